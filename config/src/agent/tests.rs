use super::*;
use crate::error::ConfigError;

const VALID: &str = r#"
agent_id = "ams1-agent1"
site = "ams1"
state_dir = "/tmp/coldaisle-test"
summary_interval = "30s"

[mqtt]
host = "127.0.0.1"
port = 1883
username = "ams1-agent1"
password = "secret"

[[devices]]
id = "pdu-r1"
protocol = "snmp"
address = "127.0.0.1:1161"
zone = "Z1"
row = "A"
rack = "R1"
profile = "apc-rpdu2"
poll_interval = "10s"
timeout = "2s"
community = "public"

[[devices.points]]
sensor = "r1-inlet"
profile_point = "probe1_temp"

[[devices.points]]
sensor = "r1-humidity"
profile_point = "probe1_humidity"

[[devices]]
id = "inrow-1"
protocol = "modbus"
address = "127.0.0.1"
zone = "Z1"
unit_id = 3

[[devices.points]]
sensor = "inrow1-inlet"
kind = "inlet_temp"
rack = "R2"
register = 96
type = "int32"
order = "ABCD"
scale = 0.1
unit = "F"
[devices.points.threshold]
high = 30.0
hysteresis = 0.5
min_duration = "1m"
severity = "critical"
"#;

fn load(text: &str) -> Result<AgentConfig, ConfigError> {
    AgentConfig::from_str(text, Path::new("agent.toml"))
}

#[test]
fn valid_config_resolves_profiles_and_defaults() {
    let config = load(VALID).expect("valid config");
    assert_eq!(config.devices.len(), 2);
    let pdu = &config.devices[0];
    assert_eq!(pdu.sensors[0].scale, 0.1);
    assert_eq!(
        pdu.sensors[0].source,
        SensorSource::Snmp {
            oid: vec![1, 3, 6, 1, 4, 1, 318, 1, 1, 26, 10, 2, 2, 1, 8, 1]
        }
    );
    assert_eq!(pdu.sensors[0].location.rack.as_deref(), Some("R1"));
    // Inlet temperatures get the ASHRAE recommended limit by default.
    assert_eq!(
        pdu.sensors[0].threshold.as_ref().map(|t| t.high),
        Some(27.0)
    );
    assert_eq!(pdu.sensors[1].threshold, None);
    let inrow = &config.devices[1];
    assert_eq!(inrow.address, "127.0.0.1:502");
    assert_eq!(inrow.unit_id, 3);
    let inlet = &inrow.sensors[0];
    assert_eq!(inlet.location.rack.as_deref(), Some("R2"));
    assert_eq!(
        inlet.threshold.as_ref().map(|t| t.severity),
        Some(Severity::Critical)
    );
    // 72.0 °F → 22.2 °C
    assert!((inlet.normalise(720.0) - 22.222).abs() < 0.01);
    assert_eq!(
        config.mqtt_password.as_ref().map(crate::Secret::expose),
        Some("secret")
    );
    assert_eq!(config.config_hash.len(), 16);
}

#[test]
fn unknown_key_names_file_and_line() {
    let text = VALID.replace("hysteresis = 0.5", "hysteresys = 0.5");
    let err = load(&text).expect_err("typo must be rejected");
    let message = err.to_string();
    let expected_line = text
        .lines()
        .position(|l| l.starts_with("hysteresys"))
        .map(|i| i + 1);
    assert_eq!(err.line(), expected_line, "{message}");
    assert!(message.starts_with("agent.toml:"), "{message}");
    assert!(message.contains("hysteresys"), "{message}");
}

#[test]
fn duplicate_sensor_names_key_and_line() {
    let text = VALID.replace("sensor = \"r1-humidity\"", "sensor = \"r1-inlet\"");
    let err = load(&text).expect_err("duplicate sensor must be rejected");
    assert_eq!(err.key(), Some("devices[0].points[1].sensor"));
    let expected_line = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("sensor = \"r1-inlet\""))
        .nth(1)
        .map(|(i, _)| i + 1);
    assert_eq!(err.line(), expected_line, "{err}");
    assert!(err.to_string().contains("used twice"));
}

#[test]
fn semantic_errors_name_their_key() {
    let cases = [
        (
            "hysteresis = 0.5",
            "hysteresis = -1.0",
            "devices[1].points[0].threshold.hysteresis",
        ),
        (
            "timeout = \"2s\"",
            "timeout = \"20s\"",
            "devices[0].timeout",
        ),
        (
            "profile = \"apc-rpdu2\"",
            "profile = \"nope\"",
            "devices[0].profile",
        ),
        (
            "register = 96",
            "oid = \"1.3.6\"",
            "devices[1].points[0].oid",
        ),
        (
            "address = \"127.0.0.1\"",
            "address = \"127.0.0.1:99999\"",
            "devices[1].address",
        ),
        ("site = \"ams1\"", "site = \"ams/1\"", "site"),
        (
            "profile_point = \"probe1_temp\"",
            "profile_point = \"probe9\"",
            "devices[0].points[0].profile_point",
        ),
    ];
    for (from, to, key) in cases {
        let text = VALID.replace(from, to);
        assert_ne!(text, VALID, "replacement {from} did not apply");
        let err = load(&text).expect_err(to);
        assert_eq!(err.key(), Some(key), "{to}: {err}");
        assert!(err.line().is_some_and(|l| l > 1), "{to}: {err}");
    }
}

#[test]
fn password_file_is_read_and_missing_file_is_named() {
    let dir = std::env::temp_dir().join(format!("coldaisle-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("mqtt.pass");
    std::fs::write(&file, "from-file\n").expect("write");
    let text = VALID.replace(
        "password = \"secret\"",
        &format!("password_file = \"{}\"", file.display()),
    );
    assert_eq!(
        load(&text)
            .expect("valid")
            .mqtt_password
            .as_ref()
            .map(crate::Secret::expose),
        Some("from-file")
    );
    let missing = text.replace("mqtt.pass", "absent.pass");
    let err = load(&missing).expect_err("missing password file");
    assert_eq!(err.key(), Some("mqtt.password_file"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn oid_parsing() {
    assert_eq!(parse_oid(".1.3.6.1"), Some(vec![1, 3, 6, 1]));
    assert_eq!(parse_oid("1.3.x"), None);
    assert_eq!(parse_oid("1"), None);
    assert_eq!(parse_oid(""), None);
}

#[test]
fn metrics_listen_is_off_by_default_and_validated() {
    assert_eq!(load(VALID).expect("valid").metrics_listen, None);
    let on = load(&format!(
        "{VALID}\n[metrics]\nlisten = \"127.0.0.1:9478\"\n"
    ))
    .expect("valid");
    assert_eq!(on.metrics_listen, Some(([127, 0, 0, 1], 9478).into()));
    let err = load(&format!("{VALID}\n[metrics]\nlisten = \"localhost\"\n"))
        .expect_err("not an address")
        .to_string();
    assert!(err.contains("metrics.listen"), "{err}");
    assert!(err.contains("IP:PORT"), "{err}");
    let err = load(&format!("{VALID}\n[metrics]\nport = 1\n"))
        .expect_err("unknown key")
        .to_string();
    assert!(err.contains("port"), "{err}");
}
