//! SNMP against real net-snmp snmpd: v3 with every auth/priv protocol pair (pass_persist values
//! that change at run time, engine discovered once), wrong user / auth / priv passphrase each
//! named without harming another device, GETBULK walks that use no more requests than the table
//! needs and the GETNEXT fallback of v1, table rows by name (ENTITY-SENSOR-MIB, vendor
//! profiles), resynchronisation after the agent restarts, the `snmp get|walk|probe` CLI, and
//! traps/informs from net-snmp's `snmptrap`/`snmpinform` through the running agent binary,
//! mosquitto and the collector to an incident in the API.

use super::support::net_snmp_async;
use anyhow::{Context, Result};
use coldaisle_agent::snmp::poll::SnmpPoller;
use coldaisle_agent::snmp::session::{SnmpClient, Target};
use coldaisle_agent::snmp::walk::walk;
use coldaisle_config::AgentConfig;
use coldaisle_testkit::peers::{SnmpValue, Snmpd, SnmpdOptions};
use std::path::Path;
use std::process::Command;

const AUTH: &str = "authpass123";
const PRIV: &str = "privpass123";
/// rPDU2SensorTempHumidityStatusTempC.1 (tenths °C) and RelativeHumidity.1.
const TEMP: &str = "1.3.6.1.4.1.318.1.1.26.10.2.2.1.8.1";
const HUMIDITY: &str = "1.3.6.1.4.1.318.1.1.26.10.2.2.1.10.1";
/// A 30-row test column.
const COLUMN: &str = "1.3.6.1.4.1.318.9.1.2";

/// snmpd with the default SHA-256/AES user `monitor` and one user per further protocol pair.
fn snmpd() -> Result<Snmpd> {
    let mut options = SnmpdOptions {
        v3_user: Some(("monitor".into(), AUTH.into(), PRIV.into())),
        ..SnmpdOptions::default()
    };
    for (user, auth, privacy) in [
        ("md5des", "MD5", Some("DES")),
        ("sha1aes256", "SHA", Some("AES-256")),
        ("md5aes192", "MD5", Some("AES-192")),
        ("sha224aes", "SHA-224", Some("AES")),
        ("sha512aes256", "SHA-512", Some("AES-256")),
        ("sha384auth", "SHA-384", None),
    ] {
        match privacy {
            Some(p) => options.extra_conf.extend([
                format!("createUser {user} {auth} {AUTH} {p} {PRIV}"),
                format!("rouser {user} priv"),
            ]),
            None => options.extra_conf.extend([
                format!("createUser {user} {auth} {AUTH}"),
                format!("rouser {user} auth"),
            ]),
        }
    }
    options
        .extra_conf
        .extend(["createUser plain".into(), "rouser plain noauth".into()]);
    options.values.insert(TEMP.into(), SnmpValue::Integer(215));
    options.values.insert(HUMIDITY.into(), SnmpValue::Gauge(41));
    for row in 1..=30 {
        options
            .values
            .insert(format!("{COLUMN}.{row}"), SnmpValue::Integer(row * 10));
    }
    Snmpd::start(options)
}

/// One device reading TEMP, HUMIDITY and a missing OID with `[devices.snmp]` = `snmp`.
fn device_config(snmpd: &Snmpd, snmp: &str) -> Result<AgentConfig> {
    let text = format!(
        r#"agent_id = "snmp-test"
site = "lab"
state_dir = "/tmp/unused"
[mqtt]
host = "127.0.0.1"
username = "u"
password = "p"
[[devices]]
id = "pdu-1"
protocol = "snmp"
address = "{}"
zone = "Z1"
poll_interval = "5s"
timeout = "4s"
[devices.snmp]
{snmp}
[[devices.points]]
sensor = "t1"
kind = "inlet_temp"
oid = "{TEMP}"
[[devices.points]]
sensor = "h1"
kind = "humidity"
oid = "{HUMIDITY}"
[[devices.points]]
sensor = "gone"
kind = "humidity"
oid = "1.3.6.1.4.1.318.1.1.26.10.2.2.1.10.9"
"#,
        snmpd.addr()
    );
    AgentConfig::from_str(&text, Path::new("snmp-test.toml")).context("test config")
}

fn v3(user: &str, auth: &str, privacy: Option<&str>) -> String {
    let mut text = format!(
        "version = \"3\"\nuser = \"{user}\"\nauth_protocol = \"{auth}\"\nauth_passphrase = \"{AUTH}\"\nrequest_timeout = \"500ms\"\nretries = 1\n"
    );
    if let Some(p) = privacy {
        text.push_str(&format!(
            "priv_protocol = \"{p}\"\npriv_passphrase = \"{PRIV}\"\n"
        ));
    }
    text
}

#[tokio::test]
async fn v3_every_protocol_pair_polls_changing_values_with_one_discovery() -> Result<()> {
    let snmpd = snmpd()?;
    let cases = [
        v3("monitor", "SHA-256", Some("AES")),
        v3("md5des", "MD5", Some("DES")),
        v3("sha1aes256", "SHA", Some("AES-256")),
        v3("md5aes192", "MD5", Some("AES-192")),
        v3("sha224aes", "SHA-224", Some("AES")),
        v3("sha512aes256", "SHA-512", Some("AES-256")),
        v3("sha384auth", "SHA-384", None),
        "version = \"3\"\nuser = \"plain\"\n".to_string(),
        "version = \"2c\"\nmax_oids_per_request = 2\n".to_string(),
        "version = \"1\"\n".to_string(),
    ];
    for (i, settings) in cases.iter().enumerate() {
        let config = device_config(&snmpd, settings)?;
        let mut poller = SnmpPoller::new(&config.devices[0])?;
        snmpd.set_value(TEMP, SnmpValue::Integer(200 + i as i32))?;
        let first = poller.poll().await.with_context(|| settings.clone())?;
        assert_eq!(first[0], Ok(200.0 + i as f64), "{settings}");
        assert_eq!(first[1], Ok(41.0), "{settings}");
        let missing = first[2].as_ref().expect_err(settings);
        assert!(missing.contains("noSuch"), "{settings}: {missing}");
        snmpd.set_value(TEMP, SnmpValue::Integer(-50))?;
        let second = poller.poll().await?;
        assert_eq!(second[0], Ok(-50.0), "{settings}");
        if settings.contains("\"3\"") {
            assert_eq!(
                poller.client().discoveries(),
                1,
                "{settings}: engine discovered once"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn wrong_user_auth_and_priv_are_named_and_other_devices_keep_polling() -> Result<()> {
    let snmpd = snmpd()?;
    let good = device_config(&snmpd, &v3("monitor", "SHA-256", Some("AES")))?;
    let mut good = SnmpPoller::new(&good.devices[0])?;
    let cases: [(String, &str); 4] = [
        (
            v3("nobody", "SHA-256", Some("AES")),
            "unknown SNMPv3 user `nobody`",
        ),
        (
            v3("monitor", "SHA-256", Some("AES")).replace(AUTH, "wrongpass1"),
            "wrong auth passphrase",
        ),
        (
            v3("monitor", "SHA-256", Some("AES")).replace(PRIV, "wrongpass2"),
            "wrong priv passphrase",
        ),
        (
            v3("monitor", "SHA-512", Some("AES")),
            "wrong auth passphrase or auth protocol (using SHA-512)",
        ),
    ];
    for (settings, expected) in cases {
        let config = device_config(&snmpd, &settings)?;
        let mut bad = SnmpPoller::new(&config.devices[0])?;
        let err = bad.poll().await.expect_err(&settings).to_string();
        assert!(err.contains(expected), "{settings}: {err}");
        assert!(!err.contains("wrongpass"), "secret in error: {err}");
        assert_eq!(good.poll().await?[1], Ok(41.0));
    }
    Ok(())
}

#[tokio::test]
async fn walks_use_getbulk_within_the_table_size_and_getnext_for_v1() -> Result<()> {
    let snmpd = snmpd()?;
    let root: Vec<u64> = COLUMN
        .split('.')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    for (settings, max_requests) in [
        // 30 rows, 10 per GETBULK: 3 requests carry the rows, a 4th sees the end.
        ("version = \"2c\"\nmax_repetitions = 10\n".to_string(), 4),
        (
            format!(
                "{}max_repetitions = 25\n",
                v3("monitor", "SHA-256", Some("AES"))
            ),
            3,
        ),
        // GETNEXT: one request per row plus the one that leaves the column.
        ("version = \"1\"\n".to_string(), 31),
    ] {
        let config = device_config(&snmpd, &settings)?;
        let device = &config.devices[0];
        let mut client = SnmpClient::new(Target {
            address: device.address.clone(),
            community: device.community.clone(),
            settings: device.snmp.clone(),
        });
        let rows = walk(&mut client, &root).await?;
        assert_eq!(rows.len(), 30, "{settings}");
        assert_eq!(rows[29].0.last(), Some(&30));
        assert_eq!(rows[29].1.numeric(), Ok(300.0));
        let sent = client.requests_sent() - client.discoveries();
        assert!(
            sent <= max_requests,
            "{settings}: {sent} requests, want at most {max_requests}"
        );
    }
    Ok(())
}

#[test]
fn cli_get_walk_probe_and_failures() -> Result<()> {
    let snmpd = snmpd()?;
    let agent = crate::support::binary("coldaisle-agent")?;
    let host = snmpd.addr().to_string();
    let dir = tempfile::tempdir()?;
    let priv_file = dir.path().join("priv");
    std::fs::write(&priv_file, format!("{PRIV}\n"))?;
    let run = |args: &[&str]| -> Result<(bool, String, String)> {
        let out = Command::new(&agent)
            .arg("snmp")
            .args(args)
            .env("TEST_AUTH", AUTH)
            .output()?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    };
    let priv_path = priv_file.to_string_lossy().into_owned();
    let v3_args = |user: &str| -> Vec<String> {
        [
            "-v",
            "3",
            "-u",
            user,
            "-l",
            "authPriv",
            "-a",
            "SHA-256",
            "--auth-passphrase-env",
            "TEST_AUTH",
            "-x",
            "AES",
            "--priv-passphrase-file",
            &priv_path,
            "-t",
            "0.5",
            "-r",
            "1",
        ]
        .iter()
        .map(ToString::to_string)
        .collect()
    };
    let mut args = vec!["get".to_string()];
    args.extend(v3_args("monitor"));
    args.extend([host.clone(), TEMP.to_string(), HUMIDITY.to_string()]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out, err) = run(&argv)?;
    assert!(ok, "{err}");
    assert_eq!(
        out,
        format!(".{TEMP} = INTEGER: 215\n.{HUMIDITY} = Gauge32: 41\n")
    );

    let (ok, out, err) = run(&["walk", "-v", "2c", "-c", "public", &host, COLUMN])?;
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 30);
    assert_eq!(
        out.lines().last(),
        Some(format!(".{COLUMN}.30 = INTEGER: 300").as_str())
    );

    let mut wrong = vec!["get".to_string()];
    wrong.extend(v3_args("monitor"));
    wrong.extend([host.clone(), TEMP.to_string()]);
    let wrong: Vec<String> = wrong
        .into_iter()
        .map(|s| if s == "AES" { "AES-256".to_string() } else { s })
        .collect();
    let argv: Vec<&str> = wrong.iter().map(String::as_str).collect();
    let (ok, _, err) = run(&argv)?;
    assert!(!ok);
    assert!(
        err.contains("wrong priv passphrase or privacy protocol (using AES-256)"),
        "{err}"
    );

    let (ok, _, err) = run(&[
        "get",
        "-v",
        "2c",
        "-c",
        "public",
        &host,
        "1.3.6.1.4.1.318.77.0",
    ])?;
    assert!(!ok && err.contains("no value"), "{err}");

    let mut probe = vec!["probe".to_string()];
    probe.extend(v3_args("monitor"));
    probe.push(host.clone());
    let argv: Vec<&str> = probe.iter().map(String::as_str).collect();
    let (ok, out, err) = run(&argv)?;
    assert!(ok, "{err}");
    assert!(out.contains("profile = \"apc-rpdu2\""), "{out}");
    assert!(out.contains("= 21.5 now"), "{out}");
    assert!(out.contains("priv_passphrase_file"), "{out}");
    assert!(
        !out.contains(PRIV) && !out.contains(AUTH),
        "secret printed: {out}"
    );
    // The snippet is a valid device config.
    let config = format!(
        "agent_id = \"a\"\nsite = \"s\"\nstate_dir = \"/tmp/x\"\n[mqtt]\nhost = \"h\"\n{}",
        out.lines()
            .skip_while(|l| !l.starts_with("[[devices]]"))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("/etc/coldaisle/snmp-priv", &priv_path)
            .replace(
                "auth_passphrase_file = \"/etc/coldaisle/snmp-auth\"",
                "auth_passphrase_env = \"TEST_AUTH_PROBE\""
            )
    );
    std::env::set_var("TEST_AUTH_PROBE", AUTH);
    AgentConfig::from_str(&config, Path::new("probe.toml")).context(config.clone())?;
    Ok(())
}

/// entPhysicalName and the entPhySensorTable columns.
const ENT_NAME: &str = "1.3.6.1.2.1.47.1.1.1.1.7";
const ENT_SENSOR: &str = "1.3.6.1.2.1.99.1.1.1";

/// Serves one ENTITY-SENSOR-MIB row: name, type, scale, precision, value, operStatus.
fn entity_row(snmpd: &Snmpd, index: u32, row: (&str, i32, i32, i32, i32, i32)) -> Result<()> {
    let (name, ty, scale, precision, value, status) = row;
    snmpd.set_value(
        &format!("{ENT_NAME}.{index}"),
        SnmpValue::String(name.into()),
    )?;
    for (column, v) in [(1, ty), (2, scale), (3, precision), (4, value), (5, status)] {
        snmpd.set_value(
            &format!("{ENT_SENSOR}.{column}.{index}"),
            SnmpValue::Integer(v),
        )?;
    }
    Ok(())
}

#[tokio::test]
async fn entity_sensor_rows_by_name_with_scale_faults_and_reindexing() -> Result<()> {
    // pass_persist serves one subtree: mib-2, so ENTITY-MIB and ENTITY-SENSOR-MIB both fit.
    let snmpd = Snmpd::start(SnmpdOptions {
        subtree: "1.3.6.1.2.1".into(),
        ..SnmpdOptions::default()
    })?;
    entity_row(&snmpd, 1001, ("Inlet Temp", 8, 9, 1, 235, 1))?;
    entity_row(&snmpd, 1002, ("Exhaust Temp", 8, 8, 0, 31_000, 1))?;
    entity_row(&snmpd, 1003, ("Top Humidity", 9, 9, 0, 40, 3))?;
    let text = format!(
        r#"agent_id = "ent-test"
site = "lab"
state_dir = "/tmp/unused"
[mqtt]
host = "127.0.0.1"
username = "u"
password = "p"
[[devices]]
id = "sw-1"
protocol = "snmp"
address = "{}"
zone = "Z1"
profile = "entity-sensor"
timeout = "4s"
[[devices.points]]
sensor = "inlet"
profile_point = "temperature"
snmp = {{ row_name = "Inlet Temp" }}
[[devices.points]]
sensor = "exhaust"
kind = "outlet_temp"
profile_point = "temperature"
snmp = {{ row_name = "Exhaust Temp" }}
[[devices.points]]
sensor = "top-rh"
profile_point = "humidity"
snmp = {{ row_name = "Top Humidity" }}
[[devices.points]]
sensor = "missing"
profile_point = "humidity"
snmp = {{ row_name = "Nowhere" }}
[[devices.points]]
sensor = "fixed"
profile_point = "temperature"
snmp = {{ index = "1002" }}
"#,
        snmpd.addr()
    );
    let config = AgentConfig::from_str(&text, Path::new("ent.toml")).context("entity config")?;
    let mut poller = SnmpPoller::new(&config.devices[0])?;
    let r = poller.poll().await?;
    assert_eq!(r[0], Ok(23.5));
    assert!(
        matches!(r[1], Ok(v) if (v - 31.0).abs() < 1e-9),
        "{:?}",
        r[1]
    );
    assert!(
        r[2].as_ref().is_err_and(|e| e.contains("nonoperational")),
        "{:?}",
        r[2]
    );
    assert!(
        r[3].as_ref().is_err_and(|e| e.contains("\"Inlet Temp\"")),
        "{:?}",
        r[3]
    );
    assert!(
        matches!(r[4], Ok(v) if (v - 31.0).abs() < 1e-9),
        "{:?}",
        r[4]
    );
    let after_first = poller.client().requests_sent();
    // Found rows are not walked again: 4 rows × 5 columns in one GET (at most 50 OIDs by
    // default), plus one walk request still looking for "Nowhere".
    poller.poll().await?;
    assert_eq!(poller.client().requests_sent() - after_first, 2);

    // The inlet sensor is re-plugged and comes back under another index.
    for column in 1..=5 {
        snmpd.remove_value(&format!("{ENT_SENSOR}.{column}.1001"))?;
    }
    snmpd.remove_value(&format!("{ENT_NAME}.1001"))?;
    entity_row(&snmpd, 1007, ("Inlet Temp", 8, 9, 2, 2410, 1))?;
    let r = poller.poll().await?;
    assert!(r[0].is_err(), "the old row is gone: {:?}", r[0]);
    let r = poller.poll().await?;
    assert_eq!(r[0], Ok(24.1));
    Ok(())
}

#[tokio::test]
async fn vendor_profiles_read_units_and_decimal_digits_columns() -> Result<()> {
    let snmpd = Snmpd::start(SnmpdOptions {
        subtree: "1.3.6.1.4.1".into(),
        ..SnmpdOptions::default()
    })?;
    // APC probe 1 reports 77 °F; probe 2, named "Cold aisle", 21 °C.
    let iem = "1.3.6.1.4.1.318.1.1.10.2.3.2.1";
    for (index, name, temp, unit, humid) in [(1, "Hot", 77, 2, 35), (2, "Cold aisle", 21, 1, 44)] {
        snmpd.set_value(&format!("{iem}.2.{index}"), SnmpValue::String(name.into()))?;
        snmpd.set_value(&format!("{iem}.4.{index}"), SnmpValue::Integer(temp))?;
        snmpd.set_value(&format!("{iem}.5.{index}"), SnmpValue::Integer(unit))?;
        snmpd.set_value(&format!("{iem}.6.{index}"), SnmpValue::Integer(humid))?;
    }
    // Raritan PDU 1, sensor 5 "Temperature Rack 3": 2315 with 2 decimal digits.
    snmpd.set_value(
        "1.3.6.1.4.1.13742.6.3.6.3.1.4.1.5",
        SnmpValue::String("Temperature Rack 3".into()),
    )?;
    snmpd.set_value("1.3.6.1.4.1.13742.6.3.6.3.1.17.1.5", SnmpValue::Gauge(2))?;
    snmpd.set_value(
        "1.3.6.1.4.1.13742.6.5.5.3.1.4.1.5",
        SnmpValue::Integer(2315),
    )?;
    snmpd.set_value("1.3.6.1.4.1.534.1.6.1.0", SnmpValue::Integer(26))?;
    snmpd.set_value(
        "1.3.6.1.4.1.476.1.42.3.4.1.3.3.1.3.1",
        SnmpValue::Integer(22),
    )?;
    let device = |id: &str, profile: &str, points: &str| {
        format!(
            "[[devices]]\nid = \"{id}\"\nprotocol = \"snmp\"\naddress = \"{}\"\nzone = \"Z1\"\nprofile = \"{profile}\"\ntimeout = \"4s\"\n{points}",
            snmpd.addr()
        )
    };
    let text = format!(
        "agent_id = \"v\"\nsite = \"lab\"\nstate_dir = \"/tmp/unused\"\n[mqtt]\nhost = \"h\"\n{}{}{}{}",
        device(
            "apc",
            "apc-env-probe",
            "[[devices.points]]\nsensor = \"p1\"\nprofile_point = \"probe_temp\"\n\
             [[devices.points]]\nsensor = \"p1-rh\"\nprofile_point = \"probe_humidity\"\n\
             [[devices.points]]\nsensor = \"cold\"\nprofile_point = \"probe_temp\"\nsnmp = { row_name = \"Cold aisle\" }\n"
        ),
        device(
            "px2",
            "raritan-px2",
            "[[devices.points]]\nsensor = \"rack3\"\nprofile_point = \"temperature\"\nsnmp = { row_name = \"Temperature Rack 3\" }\n"
        ),
        device(
            "ups",
            "eaton-xups",
            "[[devices.points]]\nsensor = \"ups-amb\"\nprofile_point = \"ambient_temp\"\n"
        ),
        device(
            "crac",
            "liebert-env",
            "[[devices.points]]\nsensor = \"crac-t\"\nprofile_point = \"temperature\"\n"
        ),
    );
    let config = AgentConfig::from_str(&text, Path::new("vendors.toml")).context(text.clone())?;
    let apc = SnmpPoller::new(&config.devices[0])?.poll().await?;
    assert_eq!(apc, vec![Ok(25.0), Ok(35.0), Ok(21.0)]);
    let px2 = SnmpPoller::new(&config.devices[1])?.poll().await?;
    assert!(
        matches!(px2[0], Ok(v) if (v - 23.15).abs() < 1e-9),
        "{px2:?}"
    );
    let ups = SnmpPoller::new(&config.devices[2])?.poll().await?;
    assert_eq!(ups, vec![Ok(26.0)]);
    let crac = SnmpPoller::new(&config.devices[3])?.poll().await?;
    assert_eq!(crac, vec![Ok(22.0)]);

    // `probe` tries every profile, walks naming columns and prints the rows it found.
    let agent = crate::support::binary("coldaisle-agent")?;
    let out = Command::new(&agent)
        .args([
            "snmp",
            "probe",
            "-v",
            "2c",
            "-c",
            "public",
            &snmpd.addr().to_string(),
        ])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        // The profile's inlet power and current points (issue 19) are not served by this
        // snmpd: the probe says how much of the profile answers.
        text.contains("# profile raritan-px2: 2 of 4 points answer"),
        "{text}"
    );
    assert!(
        text.contains("# profile eaton-xups: 1 of 1 points answer"),
        "{text}"
    );
    assert!(text.contains("profile = \"apc-env-probe\""), "{text}");
    assert!(
        text.contains(".1.3.6.1.4.1.318.1.1.10.2.3.2.1.4.1 = 25 now"),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn v3_session_resynchronises_after_the_agent_restarts() -> Result<()> {
    let mut snmpd = snmpd()?;
    let config = device_config(&snmpd, &v3("monitor", "SHA-256", Some("AES")))?;
    let mut poller = SnmpPoller::new(&config.devices[0])?;
    assert_eq!(poller.poll().await?[1], Ok(41.0));
    snmpd.restart()?;
    let after = poller
        .poll()
        .await
        .context("first poll after the restart")?;
    assert_eq!(after[1], Ok(41.0), "{after:?}");
    // The restarted engine's clock no longer matches the session's: one rediscovery, within
    // the same poll, then the session is kept again.
    assert_eq!(poller.client().discoveries(), 2);
    assert_eq!(poller.poll().await?[1], Ok(41.0));
    assert_eq!(poller.client().discoveries(), 2);
    Ok(())
}

#[tokio::test]
async fn traps_and_informs_from_net_snmp_become_events_of_their_device() -> Result<()> {
    use coldaisle_agent::snmp::trap::{listen, TrapContext};
    use coldaisle_agent::snmp::value::VarValue;
    use tokio::sync::{mpsc, watch};
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let to = format!("127.0.0.1:{}", socket.local_addr()?.port());
    let text = "agent_id = \"t\"\nsite = \"lab\"\nstate_dir = \"/tmp/unused\"\n[mqtt]\nhost = \"h\"\n\
        [[devices]]\nid = \"pdu-7\"\nprotocol = \"snmp\"\naddress = \"127.0.0.1\"\nzone = \"Z7\"\nrack = \"R3\"\n\
        [[devices.points]]\nsensor = \"t7\"\nkind = \"inlet_temp\"\noid = \"1.3.6.1.4.1.318.1.1.26.10.2.2.1.8.1\"\n";
    let config = AgentConfig::from_str(text, Path::new("traps.toml"))?;
    let (tx, mut rx) = mpsc::channel(8);
    let (stop, stopped) = watch::channel(false);
    let (_context, context) = watch::channel(std::sync::Arc::new(TrapContext {
        sources: coldaisle_agent::snmp::trap_sources::SourceTable::build(
            &config.devices,
            &Default::default(),
            None,
        ),
        devices: config.devices.clone(),
        communities: vec!["public".into()],
        v3: Default::default(),
    }));
    let listener = tokio::spawn(listen(socket, context, tx, stopped));

    // A v2c trap: the rPDU2 probe's temperature with its value.
    assert!(net_snmp_async(format!(
        "snmptrap -v 2c -c public {to} 12345 1.3.6.1.4.1.318.0.58 1.3.6.1.4.1.318.1.1.26.10.2.2.1.8.1 i 315"
    ))
    .await?);
    let event = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
        .await?
        .context("trap event")?;
    assert_eq!(event.device, "pdu-7");
    assert_eq!(
        (event.location.zone.as_str(), event.location.rack.as_deref()),
        ("Z7", Some("R3"))
    );
    assert_eq!(
        event.notification.trap_oid,
        vec![1, 3, 6, 1, 4, 1, 318, 0, 58]
    );
    assert!(event.notification.varbinds.contains(&(
        vec![1, 3, 6, 1, 4, 1, 318, 1, 1, 26, 10, 2, 2, 1, 8, 1],
        VarValue::Integer(315)
    )));

    // An inform: snmpinform exits 0 only when acknowledged.
    assert!(
        net_snmp_async(format!(
            "snmpinform -v 2c -c public -t 3 -r 0 {to} 0 1.3.6.1.4.1.318.0.59"
        ))
        .await?
    );
    let event = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
        .await?
        .context("inform event")?;
    assert_eq!(
        event.notification.trap_oid,
        vec![1, 3, 6, 1, 4, 1, 318, 0, 59]
    );

    // A wrong community is dropped and an inform with it is not acknowledged.
    assert!(
        !net_snmp_async(format!(
            "snmpinform -v 2c -c nope -t 1 -r 0 {to} 0 1.3.6.1.4.1.318.0.60"
        ))
        .await?
    );

    // A v1 enterprise-specific trap maps to enterprise.0.specific (RFC 3584).
    assert!(
        net_snmp_async(format!(
            "snmptrap -v 1 -c public {to} 1.3.6.1.4.1.318 127.0.0.1 6 17 0"
        ))
        .await?
    );
    let event = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
        .await?
        .context("v1 trap event")?;
    assert_eq!(event.notification.version, "1");
    assert_eq!(
        event.notification.trap_oid,
        vec![1, 3, 6, 1, 4, 1, 318, 0, 17]
    );

    stop.send(true)?;
    listener.await?;
    Ok(())
}

/// Agent config of the trap end-to-end test: one PDU polled on snmpd, the listener on
/// `trap_port`, and a raise/clear pair of mappings for an APC-style enterprise trap.
fn trap_agent_config(dir: &Path, mqtt_port: u16, snmpd: &Snmpd, trap_port: u16) -> String {
    format!(
        r#"agent_id = "trap-agent"
site = "lab"
state_dir = "{state}"
resend_after = "2s"

[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
username = "trap-agent"
password = "agent-pass"

[snmp_traps]
listen = "127.0.0.1:{trap_port}"
communities = ["public"]

[[snmp_traps.users]]
user = "traps"
auth_protocol = "SHA-384"
auth_passphrase = "trap-auth-1"
priv_protocol = "AES-192"
priv_passphrase = "trap-priv-1"

[[snmp_traps.map]]
oid = "1.3.6.1.4.1.318.0.58"
name = "temp_high"
category = "thermal"
kind = "inlet_temp"
severity = "critical"
value_oid = "{TEMP}"
scale = 0.1

[[snmp_traps.map]]
oid = "1.3.6.1.4.1.318.0.59"
name = "temp_high"
category = "thermal"
kind = "inlet_temp"
state = "cleared"
value_oid = "{TEMP}"
scale = 0.1

[[devices]]
id = "pdu-7"
protocol = "snmp"
address = "127.0.0.1:{snmp_port}"
zone = "Z7"
rack = "R3"
community = "{community}"
poll_interval = "1s"
timeout = "500ms"

[[devices.points]]
sensor = "pdu-7-inlet"
kind = "inlet_temp"
oid = "{TEMP}"
scale = 0.1
"#,
        state = dir.join("agent-state").display(),
        snmp_port = snmpd.port(),
        community = snmpd.community(),
    )
}

#[test]
fn trap_through_the_agent_binary_opens_and_an_inform_resolves_an_incident() -> Result<()> {
    use super::support::{free_udp_port, get_json, net_snmp, start_collector, wait_for, Daemon};
    use coldaisle_testkit::peers::Mosquitto;
    use std::time::Duration;

    let dir = tempfile::tempdir()?;
    let broker = Mosquitto::start(&[
        ("trap-agent", "agent-pass"),
        ("collector", "collector-pass"),
    ])?;
    let snmpd = Snmpd::start(SnmpdOptions::default())?;
    snmpd.set_value(TEMP, SnmpValue::Integer(221))?;
    let (collector, api) = start_collector(dir.path(), "trap-collector", broker.port())?;
    let trap_port = free_udp_port()?;
    let agent_toml = dir.path().join("agent.toml");
    std::fs::write(
        &agent_toml,
        trap_agent_config(dir.path(), broker.port(), &snmpd, trap_port),
    )?;
    let agent = Daemon::start(
        "coldaisle-agent",
        &agent_toml,
        &dir.path().join("agent.log"),
    )?;
    let logs = || {
        format!(
            "agent log:\n{}\ncollector log:\n{}",
            agent.log_tail(),
            collector.log_tail()
        )
    };
    let incidents = || -> Option<Vec<serde_json::Value>> {
        get_json(&format!("{api}/api/v1/incidents?zone=Z7"))
            .ok()?
            .as_array()
            .cloned()
    };
    // The agent is up and publishing once the collector has its readings.
    wait_for("the agent listening", Duration::from_secs(20), || {
        agent
            .log()
            .contains("SNMP notification listener started")
            .then_some(())
    })
    .with_context(logs)?;
    assert!(incidents().context("collector API")?.is_empty());

    // snmptrap: the PDU says its probe is too hot (31.5 °C) → an open thermal incident of Z7.
    let to = format!("127.0.0.1:{trap_port}");
    assert!(
        net_snmp(&format!(
            "snmptrap -v 2c -c public {to} 0 1.3.6.1.4.1.318.0.58 {TEMP} i 315"
        ))?,
        "snmptrap failed"
    );
    let open = wait_for("a trap incident to open", Duration::from_secs(20), || {
        let list = incidents()?;
        list.into_iter()
            .find(|i| i["status"] == "open" && i.to_string().contains("pdu-7.trap.temp_high"))
    })
    .with_context(logs)?;
    let text = open.to_string();
    assert!(
        text.contains("thermal") && text.contains("critical"),
        "{text}"
    );
    assert!(text.contains("31.5"), "{text}");

    // snmpinform: exits 0 only when the running agent acknowledged it; the clear resolves.
    assert!(
        net_snmp(&format!(
            "snmpinform -v 2c -c public -t 3 -r 0 {to} 0 1.3.6.1.4.1.318.0.59 {TEMP} i 240"
        ))?,
        "snmpinform was not acknowledged\n{}",
        logs()
    );
    wait_for(
        "the trap incident to resolve",
        Duration::from_secs(20),
        || {
            let list = incidents()?;
            (list.len() == 1 && list[0]["status"] == "resolved").then_some(())
        },
    )
    .with_context(logs)?;

    // An unknown trap OID is logged and gives no event; a wrong community is not acknowledged.
    assert!(!net_snmp(&format!(
        "snmpinform -v 2c -c nope -t 1 -r 0 {to} 0 1.3.6.1.4.1.318.0.58"
    ))?);

    // SNMPv3: an authPriv inform of a configured user is acknowledged by the running agent
    // (after discovering its engine id) and decoded (its OID has no mapping: logged only); an
    // unknown user is refused with a log line naming it.
    assert!(
        net_snmp(&format!(
            "snmpinform -v 3 -u traps -l authPriv -a SHA-384 -A trap-auth-1 -x AES-192 -X trap-priv-1 -t 3 -r 1 {to} 0 1.3.6.1.4.1.318.0.999"
        ))?,
        "SNMPv3 inform was not acknowledged\n{}",
        logs()
    );
    wait_for(
        "the v3 inform to be decoded",
        Duration::from_secs(10),
        || {
            agent
                .log()
                .contains(r#""trap_oid":"1.3.6.1.4.1.318.0.999""#)
                .then_some(())
        },
    )
    .with_context(logs)?;
    assert!(net_snmp(&format!(
        "snmptrap -v 3 -u ops -l noAuthNoPriv -e 0x80001f8880aabbccdd {to} 0 1.3.6.1.4.1.318.0.58"
    ))?);
    wait_for(
        "the unknown v3 user to be logged",
        Duration::from_secs(10),
        || {
            agent
                .log()
                .contains("unknown SNMPv3 user `ops`")
                .then_some(())
        },
    )
    .with_context(logs)?;

    // SIGHUP applies a new mapping to the running listener (same socket).
    let mut text = std::fs::read_to_string(&agent_toml)?;
    text.push_str(
        "\n[[snmp_traps.map]]\noid = \"1.3.6.1.4.1.318.0.61\"\nname = \"leak\"\ncategory = \"humidity\"\nkind = \"humidity\"\n",
    );
    std::fs::write(&agent_toml, text)?;
    agent.signal("HUP")?;
    wait_for("the reload", Duration::from_secs(10), || {
        agent.log().contains("config reloaded").then_some(())
    })
    .with_context(logs)?;
    assert!(net_snmp(&format!(
        "snmpinform -v 2c -c public -t 3 -r 0 {to} 0 1.3.6.1.4.1.318.0.61"
    ))?);
    wait_for(
        "the new mapping's incident",
        Duration::from_secs(20),
        || {
            incidents()?
                .into_iter()
                .find(|i| i["status"] == "open" && i.to_string().contains("pdu-7.trap.leak"))
        },
    )
    .with_context(logs)?;
    Ok(())
}

#[tokio::test]
async fn concurrent_gets_spread_over_sessions_and_keep_sensor_order() -> Result<()> {
    let snmpd = snmpd()?;
    let mut text = format!(
        "agent_id = \"c\"\nsite = \"lab\"\nstate_dir = \"/tmp/unused\"\n[mqtt]\nhost = \"h\"\n\
         [[devices]]\nid = \"pdu-c\"\nprotocol = \"snmp\"\naddress = \"{}\"\nzone = \"Z1\"\n\
         community = \"{}\"\npoll_interval = \"5s\"\ntimeout = \"4s\"\n[devices.snmp]\n\
         max_oids_per_request = 4\nmax_concurrent_requests = 3\n",
        snmpd.addr(),
        snmpd.community()
    );
    for i in 1..=30 {
        text.push_str(&format!(
            "[[devices.points]]\nsensor = \"c{i}\"\nkind = \"temperature\"\noid = \"{COLUMN}.{i}\"\n"
        ));
    }
    let config = AgentConfig::from_str(&text, Path::new("concurrent.toml"))?;
    let mut poller = SnmpPoller::new(&config.devices[0])?;
    for round in 1..=2u64 {
        let readings = poller.poll().await?;
        let want: Vec<_> = (1..=30).map(|i| Ok(f64::from(i * 10))).collect();
        assert_eq!(readings, want);
        // 30 OIDs, 4 per GET: 8 GETs per poll, each session taking the next GET when free,
        // so the first session carries some of them but not all.
        assert_eq!(poller.requests_sent(), 8 * round);
        let first = poller.client().requests_sent();
        assert!(
            (round..8 * round).contains(&first),
            "first session sent {first}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_too_big_answer_is_asked_again_in_halves() -> Result<()> {
    use coldaisle_testkit::snmp_sim::{SimValue, SnmpSim};
    let sim = SnmpSim::start("public").await?;
    for i in 1..=16 {
        sim.set(
            &format!("1.3.6.1.4.1.99999.7.{i}"),
            SimValue::Integer(i * 10),
        )
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    let mut text = format!(
        "agent_id = \"b\"\nsite = \"lab\"\nstate_dir = \"/tmp/unused\"\n[mqtt]\nhost = \"h\"\n\
         [[devices]]\nid = \"old-ups\"\nprotocol = \"snmp\"\naddress = \"{}\"\nzone = \"Z1\"\n\
         poll_interval = \"5s\"\ntimeout = \"4s\"\n[devices.snmp]\nmax_oids_per_request = 16\n",
        sim.addr()
    );
    for i in 1..=16 {
        text.push_str(&format!(
            "[[devices.points]]\nsensor = \"u{i}\"\nkind = \"temperature\"\noid = \"1.3.6.1.4.1.99999.7.{i}\"\n"
        ));
    }
    let config = AgentConfig::from_str(&text, Path::new("toobig.toml"))?;
    let mut poller = SnmpPoller::new(&config.devices[0])?;
    // 16 varbinds take ≈ 300 octets; this device answers at most 200 (so at most 8 OIDs).
    sim.set_max_response_bytes(200);
    let readings = poller.poll().await?;
    let want: Vec<_> = (1..=16).map(|i| Ok(f64::from(i * 10))).collect();
    assert_eq!(readings, want);
    // One GET of 16 (tooBig), then 8 + 8.
    assert_eq!(poller.requests_sent(), 3);
    // A device that cannot answer even one OID fails that point, with the reason.
    sim.set_max_response_bytes(10);
    let readings = poller.poll().await?;
    assert!(
        readings
            .iter()
            .all(|r| r.as_ref().is_err_and(|e| e.contains("tooBig"))),
        "{readings:?}"
    );
    Ok(())
}
