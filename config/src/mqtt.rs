//! MQTT broker connection settings shared by the agent and the collector.

use crate::error::{KeyPath, Problem};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// How to reach the MQTT broker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker host name or address.
    pub host: String,
    /// Broker port (1883 plain, 8883 TLS).
    #[serde(default = "default_port")]
    pub port: u16,
    /// Username, one per agent in production (the broker ACL limits it to its own topics).
    #[serde(default)]
    pub username: Option<String>,
    /// Password inline. Prefer `password_file` so the secret stays out of the config.
    #[serde(default)]
    pub password: Option<String>,
    /// File holding the password (first line, trailing newline ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Topic prefix of wire contract v1.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// MQTT keep-alive.
    #[serde(default = "default_keep_alive", with = "humantime_serde")]
    pub keep_alive: Duration,
}

fn default_port() -> u16 {
    1883
}
fn default_prefix() -> String {
    coldaisle_core::wire::DEFAULT_PREFIX.to_string()
}
fn default_keep_alive() -> Duration {
    Duration::from_secs(30)
}

impl MqttConfig {
    /// Checks the settings and reads the password file, returning the password to use.
    pub(crate) fn resolve_password(&self, at: &KeyPath) -> Result<Option<String>, Problem> {
        if self.host.trim().is_empty() {
            return Err(Problem::new(at.key("host"), "must name the broker host"));
        }
        if self.topic_prefix.is_empty() || self.topic_prefix.contains(['+', '#']) {
            return Err(Problem::new(
                at.key("topic_prefix"),
                "must be non-empty and contain no MQTT wildcards (+, #)",
            ));
        }
        match (&self.password, &self.password_file) {
            (Some(_), Some(_)) => Err(Problem::new(
                at.key("password_file"),
                "set either `password` or `password_file`, not both",
            )),
            (Some(p), None) => Ok(Some(p.clone())),
            (None, Some(file)) => std::fs::read_to_string(file)
                .map(|text| Some(text.lines().next().unwrap_or("").to_string()))
                .map_err(|e| {
                    Problem::new(
                        at.key("password_file"),
                        format!("cannot read {}: {e}", file.display()),
                    )
                }),
            (None, None) => Ok(None),
        }
    }
}
