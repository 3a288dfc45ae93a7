//! What a config reload cannot apply to a running agent: the settings that identify the agent
//! or its store and broker connection. Pure: compares two validated configs.

use coldaisle_config::AgentConfig;

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
