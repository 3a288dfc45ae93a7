//! MQTT broker connection settings shared by the agent and the collector.

use crate::error::{KeyPath, Problem};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// How to reach the MQTT broker. Its `Debug` output never shows the password.
#[derive(Clone, Deserialize)]
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
    /// TLS (server verification, optional client certificate). Absent: plain TCP.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// A secret (password): its `Debug` output is `<redacted>`, so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_string())
    }
}

/// TLS settings of the broker connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA(s) that signed the broker's certificate. The broker's certificate
    /// must name `host` (DNS name or IP address).
    pub ca_file: PathBuf,
    /// PEM client certificate (mutual TLS); requires `client_key`.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
}

/// TLS material read from the files a [`TlsConfig`] names (PEM bytes).
#[derive(Clone)]
pub struct TlsMaterial {
    /// CA certificates.
    pub ca: Vec<u8>,
    /// Client certificate and key, for mutual TLS.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("TlsMaterial")
            .field("ca_bytes", &self.ca.len())
            .field("client_auth", &self.client.is_some())
            .finish()
    }
}

pub(crate) fn read_pem(path: &std::path::Path, at: KeyPath) -> Result<Vec<u8>, Problem> {
    let bytes = std::fs::read(path)
        .map_err(|e| Problem::new(at.clone(), format!("cannot read {}: {e}", path.display())))?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(Problem::new(
            at,
            format!("{} is not a PEM file (no -----BEGIN line)", path.display()),
        ));
    }
    Ok(bytes)
}

impl std::fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_file", &self.password_file)
            .field("topic_prefix", &self.topic_prefix)
            .field("keep_alive", &self.keep_alive)
            .field("tls", &self.tls)
            .finish()
    }
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
    /// Reads the TLS files, if TLS is configured.
    pub(crate) fn resolve_tls(&self, at: &KeyPath) -> Result<Option<TlsMaterial>, Problem> {
        let Some(tls) = &self.tls else {
            return Ok(None);
        };
        let at = at.key("tls");
        let ca = read_pem(&tls.ca_file, at.key("ca_file"))?;
        let client = match (&tls.client_cert, &tls.client_key) {
            (Some(cert), Some(key)) => Some((
                read_pem(cert, at.key("client_cert"))?,
                read_pem(key, at.key("client_key"))?,
            )),
            (None, None) => None,
            (Some(_), None) => {
                return Err(Problem::new(
                    at.key("client_key"),
                    "client_cert needs client_key",
                ))
            }
            (None, Some(_)) => {
                return Err(Problem::new(
                    at.key("client_cert"),
                    "client_key needs client_cert",
                ))
            }
        };
        Ok(Some(TlsMaterial { ca, client }))
    }

    /// Checks the settings and reads the password file, returning the password to use.
    pub(crate) fn resolve_password(&self, at: &KeyPath) -> Result<Option<Secret>, Problem> {
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
            (Some(p), None) => Ok(Some(Secret::from(p.as_str()))),
            (None, Some(file)) => std::fs::read_to_string(file)
                .map(|text| Some(Secret::from(text.lines().next().unwrap_or(""))))
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

#[cfg(test)]
mod tests {
    #[test]
    fn debug_output_never_shows_the_password() {
        let config: super::MqttConfig =
            toml::from_str("host = \"h\"\npassword = \"hunter2\"").expect("valid");
        let text = format!("{config:?}");
        assert!(
            !text.contains("hunter2") && text.contains("<redacted>"),
            "{text}"
        );
    }
}
