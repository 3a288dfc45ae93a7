//! What a config reload cannot apply to a running agent: the settings that identify the agent
//! or its store and broker connection. Pure: compares two validated configs. And what the
//! running agent keeps of its config for the next reload ([`RetainedConfig`]).

use coldaisle_config::{AgentConfig, Device};
use std::sync::Arc;

/// The config in force, as a running agent keeps it until the next reload (issue 18): the
/// devices once, shared (`Arc`) with the pipeline and the device tasks, and the rest of the
/// config without its two device lists (the resolved `devices` and the file's
/// `raw.devices`), which would otherwise be a second and a third copy of every device's
/// settings. A reload needs no more: [`restart_only_changes`] compares settings outside the
/// device lists, and the device diff compares [`RetainedConfig::devices`].
#[derive(Debug)]
pub struct RetainedConfig {
    /// `devices` and `raw.devices` are empty (invariant): never read a device from here.
    rest: AgentConfig,
    /// The config's devices in its order, shared.
    devices: Vec<Arc<Device>>,
}

impl RetainedConfig {
    /// Keeps `config` whose devices are `devices` (shared: [`crate::devices::share`] of
    /// `config.devices`), dropping its own device lists.
    #[must_use]
    pub fn new(mut config: AgentConfig, devices: Vec<Arc<Device>>) -> RetainedConfig {
        config.devices = Vec::new();
        config.raw.devices = Vec::new();
        RetainedConfig {
            rest: config,
            devices,
        }
    }

    /// The config in force without its devices, for [`restart_only_changes`].
    #[must_use]
    pub fn settings(&self) -> &AgentConfig {
        &self.rest
    }

    /// The devices in force, in the config's order.
    #[must_use]
    pub fn devices(&self) -> &[Arc<Device>] {
        &self.devices
    }
}

/// Keys whose change needs a restart (reported by name, not applied on reload).
pub fn restart_only_changes(old: &AgentConfig, new: &AgentConfig) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.agent_id != new.agent_id {
        keys.push("agent_id");
    }
    if old.site != new.site {
        keys.push("site");
    }
    if old.state_dir != new.state_dir {
        keys.push("state_dir");
    }
    if old.resend_after != new.resend_after {
        keys.push("resend_after");
    }
    if old.raw.status_every != new.raw.status_every {
        keys.push("status_every");
    }
    if old.raw.outbox_max_bytes != new.raw.outbox_max_bytes {
        keys.push("outbox_max_bytes");
    }
    // The broker settings have no equality of their own (secrets inside): compare what the
    // connection is made of, including the password.
    if format!("{:?}", old.raw.mqtt) != format!("{:?}", new.raw.mqtt)
        || old.mqtt_password != new.mqtt_password
    {
        keys.push("mqtt");
    }
    if old.snmp_traps.listen != new.snmp_traps.listen {
        keys.push("snmp_traps.listen");
    }
    if old.metrics_listen != new.metrics_listen {
        keys.push("metrics.listen");
    }
    keys
}
