//! Warnings of `check-config`: settings that load but that an operator should change —
//! secrets written inline in the config file (readable by whoever reads the config, copied into
//! backups and tickets) and a trap listener that accepts no v1/v2c community.
//!
//! Pure: looks at a loaded config, reads no file.

use crate::error::KeyPath;
use crate::notify::ReceiverKind;
use crate::snmp::RawUsmUser;
use crate::{AgentConfig, CollectorConfig};

/// One warning: the key and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// Key at fault, e.g. `notify.receivers[0].url`.
    pub key: String,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

fn inline(key: KeyPath, instead: &str) -> ConfigWarning {
    ConfigWarning {
        key: key.to_string(),
        message: format!("secret written inline in the config file; move it to {instead}"),
    }
}

fn mqtt_password(password: Option<&String>, out: &mut Vec<ConfigWarning>) {
    if password.is_some() {
        out.push(inline(
            KeyPath::default().key("mqtt").key("password"),
            "a file named by mqtt.password_file",
        ));
    }
}

fn usm(user: &RawUsmUser, at: KeyPath, out: &mut Vec<ConfigWarning>) {
    if user.auth_passphrase.is_some() {
        out.push(inline(
            at.key("auth_passphrase"),
            "auth_passphrase_file or auth_passphrase_env",
        ));
    }
    if user.priv_passphrase.is_some() {
        out.push(inline(
            at.key("priv_passphrase"),
            "priv_passphrase_file or priv_passphrase_env",
        ));
    }
}

/// Warnings about a collector config.
pub fn collector_warnings(config: &CollectorConfig) -> Vec<ConfigWarning> {
    let mut out = Vec::new();
    mqtt_password(config.raw.mqtt.password.as_ref(), &mut out);
    for (i, r) in config.raw.notify.receivers.iter().enumerate() {
        let url_is_secret = matches!(r.kind, ReceiverKind::Slack | ReceiverKind::Webhook);
        if url_is_secret && r.url.is_some() {
            out.push(ConfigWarning {
                key: KeyPath::default()
                    .key("notify")
                    .key("receivers")
                    .index(i)
                    .key("url")
                    .to_string(),
                message: "a Slack or webhook URL is a secret (whoever holds it can post); \
                          move it to a file named by url_file"
                    .into(),
            });
        }
    }
    out
}

/// The community anyone guesses first: the default of most devices and of net-snmp's tools.
const WELL_KNOWN_COMMUNITY: &str = "public";

/// A v1/v2c device polled with `public`, written or left out (then it is the default): whoever
/// can reach the device reads it with that, so say what to set instead.
fn well_known_community(
    device: &crate::agent::Device,
    raw: Option<&crate::agent::RawDevice>,
    index: usize,
) -> Option<ConfigWarning> {
    use crate::snmp::SnmpVersion;
    if device.protocol != crate::agent::Protocol::Snmp
        || device.snmp.version == SnmpVersion::V3
        || device.community != WELL_KNOWN_COMMUNITY
    {
        return None;
    }
    let how = match raw.and_then(|r| r.community.as_ref()) {
        Some(_) => "is the well-known `public`",
        None => "is not set, so the default `public` is used",
    };
    Some(ConfigWarning {
        key: KeyPath::default()
            .key("devices")
            .index(index)
            .key("community")
            .to_string(),
        message: format!(
            "device {:?}: the SNMP community {how}, which anyone on the management network can \
             read the device with; set the device's own read-only community, or poll it with \
             SNMPv3 (snmp.version = \"3\" with a user)",
            device.id
        ),
    })
}

/// Warnings about an agent config.
pub fn agent_warnings(config: &AgentConfig) -> Vec<ConfigWarning> {
    let mut out = Vec::new();
    mqtt_password(config.raw.mqtt.password.as_ref(), &mut out);
    for (i, device) in config.raw.devices.iter().enumerate() {
        if let Some(snmp) = &device.snmp {
            let at = KeyPath::default().key("devices").index(i).key("snmp");
            if snmp.auth_passphrase.is_some() {
                out.push(inline(
                    at.key("auth_passphrase"),
                    "auth_passphrase_file or auth_passphrase_env",
                ));
            }
            if snmp.priv_passphrase.is_some() {
                out.push(inline(
                    at.key("priv_passphrase"),
                    "priv_passphrase_file or priv_passphrase_env",
                ));
            }
        }
    }
    for (i, device) in config.devices.iter().enumerate() {
        if let Some(warning) = well_known_community(device, config.raw.devices.get(i), i) {
            out.push(warning);
        }
    }
    let traps = KeyPath::default().key("snmp_traps");
    if let Some(raw) = &config.raw.snmp_traps {
        for (i, user) in raw.users.iter().enumerate() {
            usm(user, traps.key("users").index(i), &mut out);
        }
    }
    if config.snmp_traps.listen.is_some() && config.snmp_traps.communities.is_empty() {
        out.push(ConfigWarning {
            key: traps.key("communities").to_string(),
            message: "no v1/v2c community is accepted, so v1/v2c traps are refused (there is no \
                      default); set communities = [\"<the community your devices send>\"], or \
                      send SNMPv3 notifications (snmp_traps.users, v3 devices)"
                .into(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn inline_secrets_and_secret_urls_are_named() {
        let text = r#"
collector_id = "c"
state_dir = "/tmp/c"
[mqtt]
host = "b"
password = "inline"
[[notify.receivers]]
name = "slack"
kind = "slack"
url = "https://hooks.slack.com/services/x"
[[notify.receivers]]
name = "slack2"
kind = "slack"
url_file = "/etc/coldaisle/slack.url"
[[notify.receivers]]
name = "am"
kind = "alertmanager"
url = "http://am:9093"
"#;
        let config =
            CollectorConfig::from_str(text, Path::new("c.toml")).map_err(|e| e.to_string());
        let keys: Vec<String> = collector_warnings(&config.expect("loads"))
            .into_iter()
            .map(|w| w.key)
            .collect();
        assert_eq!(keys, vec!["mqtt.password", "notify.receivers[0].url"]);
    }

    #[test]
    fn a_trap_listener_without_community_is_explained() {
        let base = "agent_id = \"a\"\nsite = \"s\"\nstate_dir = \"/tmp/a\"\n[mqtt]\nhost = \"b\"\n";
        let load = |extra: &str| {
            AgentConfig::from_str(&format!("{base}{extra}"), Path::new("a.toml"))
                .map(|c| agent_warnings(&c))
                .map_err(|e| e.to_string())
        };
        let warnings = load("[snmp_traps]\nlisten = \"127.0.0.1:1162\"\n").expect("loads");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].key, "snmp_traps.communities");
        assert!(
            warnings[0].message.contains("set communities = ["),
            "{warnings:?}"
        );
        let warnings = load(
            "[snmp_traps]\nlisten = \"127.0.0.1:1162\"\ncommunities = [\"c1\"]\n\
             [[snmp_traps.users]]\nuser = \"t\"\nauth_protocol = \"SHA\"\nauth_passphrase = \"authpass1\"\n",
        )
        .expect("loads");
        let keys: Vec<&str> = warnings.iter().map(|w| w.key.as_str()).collect();
        assert_eq!(keys, vec!["snmp_traps.users[0].auth_passphrase"]);
    }

    #[test]
    fn polling_with_the_well_known_community_is_explained() {
        let base = "agent_id = \"a\"\nsite = \"s\"\nstate_dir = \"/tmp/a\"\n[mqtt]\nhost = \"b\"\n";
        let device = |id: &str, extra: &str| {
            format!(
                "[[devices]]\nid = \"{id}\"\nprotocol = \"snmp\"\naddress = \"127.0.0.1\"\n\
                 zone = \"Z1\"\nprofile = \"apc-rpdu2\"\n{extra}\
                 [[devices.points]]\nsensor = \"{id}-inlet\"\nprofile_point = \"probe1_temp\"\n"
            )
        };
        let text = format!(
            "{base}{}{}{}{}",
            device("unset", ""),
            device("written", "community = \"public\"\n"),
            device("own", "community = \"ro-site-1\"\n"),
            device(
                "v3",
                "[devices.snmp]\nversion = \"3\"\nuser = \"u\"\nlevel = \"noAuthNoPriv\"\n"
            ),
        );
        let config = AgentConfig::from_str(&text, Path::new("a.toml")).map_err(|e| e.to_string());
        let warnings = agent_warnings(&config.expect("loads"));
        let keys: Vec<&str> = warnings.iter().map(|w| w.key.as_str()).collect();
        assert_eq!(keys, vec!["devices[0].community", "devices[1].community"]);
        assert!(warnings[0].message.contains("not set"), "{warnings:?}");
        assert!(warnings[1].message.contains("\"written\""), "{warnings:?}");
        assert!(warnings[1].message.contains("SNMPv3"), "{warnings:?}");
    }
}
