//! End-to-end tests against real peers: mosquitto, net-snmp snmpd (pass_persist values) and a
//! pymodbus server, with our own agent and collector binaries as separate processes.
//! A reading goes device → agent → MQTT → collector → incident → problem, checked through the
//! collector's HTTP API.

mod modbus;
mod support;
// Further end-to-end areas live beside this file, one module each (e.g. `mod modbus;`).
mod api_access;
mod chaos;
mod dashboard;
mod forecast;
mod fuzz_seeds;
mod metrics;
mod pagers;
mod partition;
mod postgres_failover;
mod postgres_partitions;
mod postgres_store;
mod rack_power;
mod service;
mod snmp;
mod snmp_get_size;
mod snmp_traps;
mod snmp_v3_traps;
mod tls;
mod trust;

use anyhow::{Context, Result};
use coldaisle_core::registers::{encode, RegisterType, WordOrder};
use coldaisle_testkit::peers::{Mosquitto, PyModbus, SnmpValue, Snmpd, SnmpdOptions};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::{
    collector_head, free_port, get_json, start_daemon, wait_for, wait_until_healthy, DaemonFiles,
};

const PROBE_TEMP: &str = "1.3.6.1.4.1.318.1.1.26.10.2.2.1.8";

struct Site {
    snmpd: Snmpd,
    modbus: PyModbus,
}

impl Site {
    /// Sets every rack's inlet temperature in °C (two PDU probes over SNMP, the InRow over Modbus).
    fn set_inlets(&self, celsius: f64) -> Result<()> {
        for index in [1, 2] {
            self.snmpd.set_value(
                &format!("{PROBE_TEMP}.{index}"),
                SnmpValue::Integer((celsius * 10.0).round() as i32),
            )?;
        }
        let tenths_f = (celsius * 9.0 / 5.0 + 32.0) * 10.0;
        self.modbus.set_holding(
            1,
            92,
            &encode(tenths_f, RegisterType::Int32, WordOrder::Abcd),
        )?;
        Ok(())
    }
}

fn agent_config(dir: &Path, mqtt_port: u16, site: &Site) -> String {
    format!(
        r#"agent_id = "e2e-agent"
site = "lab1"
state_dir = "{state}"
summary_interval = "1s"
resend_after = "2s"

[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
username = "e2e-agent"
password_file = "{pass}"

[correlation]
window = "30s"
min_sensors = 2

# Overheats seconds apart on purpose: no flap suppression here.
[detection]
flap_window = "0s"

[[devices]]
id = "pdu-a"
protocol = "snmp"
address = "127.0.0.1:{snmp_port}"
zone = "Z1"
community = "public"
poll_interval = "300ms"
timeout = "250ms"

[[devices.points]]
sensor = "r1-inlet"
kind = "inlet_temp"
rack = "R1"
oid = "{PROBE_TEMP}.1"
scale = 0.1
[devices.points.threshold]
high = 27.0
min_duration = "500ms"

[[devices.points]]
sensor = "r2-inlet"
kind = "inlet_temp"
rack = "R2"
oid = "{PROBE_TEMP}.2"
scale = 0.1
[devices.points.threshold]
high = 27.0
min_duration = "500ms"

[[devices]]
id = "inrow-1"
protocol = "modbus"
address = "127.0.0.1:{modbus_port}"
zone = "Z1"
rack = "R3"
profile = "apc-inrow-modbus"
unit_id = 1
poll_interval = "300ms"
timeout = "250ms"

[[devices.points]]
sensor = "r3-inlet"
profile_point = "rack_inlet"
[devices.points.threshold]
high = 27.0
min_duration = "500ms"
"#,
        state = dir.join("agent-state").display(),
        pass = dir.join("agent.pass").display(),
        snmp_port = site.snmpd.port(),
        modbus_port = site.modbus.port(),
    )
}

fn collector_config(dir: &Path, mqtt_port: u16, http_port: u16) -> String {
    format!(
        "{}\n[problems]\nmin_incidents = 3\nwindow = \"30d\"\n",
        collector_head("e2e-collector", dir, mqtt_port, http_port, None)
    )
}

/// Zone Z1's thermal incidents. A device incident (an SNMP answer slower than the 250 ms
/// timeout while the machine is loaded, e.g. snmpd's first answer) is legitimate and is not
/// what these tests count.
fn zone_incidents(api: &str) -> Result<Vec<Value>> {
    let v = get_json(&format!("{api}/api/v1/incidents?zone=Z1"))?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["fingerprint"]["category"] == "thermal")
        .cloned()
        .collect())
}

/// One overheat: all racks hot until an incident is open, then normal until it is resolved.
fn overheat(site: &Site, api: &str, nth: usize) -> Result<()> {
    site.set_inlets(31.0)?;
    wait_for(
        &format!("incident {nth} to open"),
        Duration::from_secs(30),
        || {
            let incidents = zone_incidents(api).ok()?;
            (incidents.len() == nth && incidents.iter().any(|i| i["status"] == "open"))
                .then_some(())
        },
    )?;
    site.set_inlets(22.0)?;
    wait_for(
        &format!("incident {nth} to resolve"),
        Duration::from_secs(30),
        || {
            let incidents = zone_incidents(api).ok()?;
            incidents
                .iter()
                .all(|i| i["status"] == "resolved")
                .then_some(())
        },
    )
}

#[test]
fn reading_to_problem_through_real_peers_with_a_collector_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut broker =
        Mosquitto::start(&[("e2e-agent", "agent-pass"), ("collector", "collector-pass")])?;
    let site = Site {
        snmpd: Snmpd::start(SnmpdOptions::default())?,
        modbus: PyModbus::start(&[1])?,
    };
    site.set_inlets(22.0)?;
    std::fs::write(dir.path().join("agent.pass"), "agent-pass\n")?;
    let http_port = free_port()?;
    let api = format!("http://127.0.0.1:{http_port}");
    let collector_files = DaemonFiles::write(
        dir.path(),
        "coldaisle-collector",
        "collector",
        &collector_config(dir.path(), broker.port(), http_port),
    )?;
    let mut collector = collector_files.start()?;
    wait_until_healthy(&api)?;
    let agent = agent_config(dir.path(), broker.port(), &site);
    let mut agent = start_daemon(dir.path(), "coldaisle-agent", "agent", &agent)?;

    // Readings arrive: the zone report lists the three racks with their inlet temperatures.
    let report = wait_for("zone report with 3 racks", Duration::from_secs(30), || {
        let r = get_json(&format!("{api}/api/v1/zones/Z1/report")).ok()?;
        let racks = r["racks"].as_array()?;
        (racks.len() == 3 && racks.iter().all(|rack| rack["inlet_last"].is_number())).then_some(r)
    })
    .with_context(|| {
        format!(
            "agent log:\n{}\ncollector log:\n{}",
            agent.log_tail(),
            collector.log_tail()
        )
    })?;
    for rack in report["racks"].as_array().context("racks")? {
        let last = rack["inlet_last"].as_f64().context("inlet_last")?;
        assert!(
            (last - 22.0).abs() < 0.2,
            "rack {rack} reads {last}, expected 22 °C"
        );
    }

    overheat(&site, &api, 1).with_context(|| agent.log_tail())?;

    // The collector dies abruptly; the agent keeps polling and detecting meanwhile.
    collector.kill();
    site.set_inlets(31.0)?;
    std::thread::sleep(Duration::from_secs(3));
    site.set_inlets(22.0)?;
    std::thread::sleep(Duration::from_secs(2));
    let mut collector = collector_files.start()?;
    wait_for(
        "incident 2 after the restart",
        Duration::from_secs(30),
        || {
            let incidents = zone_incidents(&api).ok()?;
            (incidents.len() == 2 && incidents.iter().all(|i| i["status"] == "resolved"))
                .then_some(())
        },
    )
    .with_context(|| collector.log_tail())?;

    // No problem yet: two incidents are below the rule's three.
    let problems = get_json(&format!("{api}/api/v1/problems"))?;
    assert_eq!(problems.as_array().map(Vec::len), Some(0), "{problems}");

    // A malformed payload is counted and ingest goes on.
    let published = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port().to_string(),
            "-u",
            "collector",
            "-P",
            "collector-pass",
        ])
        .args([
            "-t",
            "coldaisle/v1/lab1/e2e-agent/events",
            "-q",
            "1",
            "-m",
            "{not json",
        ])
        .status()
        .context("running mosquitto_pub (apt-get install mosquitto-clients)")?;
    assert!(published.success());
    wait_for(
        "malformed payload to be counted",
        Duration::from_secs(10),
        || {
            let stats = get_json(&format!("{api}/api/v1/stats")).ok()?;
            (stats["ingest"]["malformed"].as_u64()? >= 1).then_some(())
        },
    )?;

    overheat(&site, &api, 3).with_context(|| agent.log_tail())?;

    let problems = get_json(&format!("{api}/api/v1/problems"))?;
    let problems = problems.as_array().context("problems array")?;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["fingerprint"]["zone"], "Z1");
    assert_eq!(problems[0]["incidents"].as_array().map(Vec::len), Some(3));

    // The operator's CLI prints the same report as a table.
    let out = Command::new(support::binary("coldaisle-collector")?)
        .args(["report", "--zone", "Z1", "--url", &api])
        .output()?;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in ["R1", "R2", "R3", "prb-lab1-z1-thermal-"] {
        assert!(table.contains(needle), "report lacks {needle}:\n{table}");
    }
    // The same zone over a stored period: rack figures from the roll-ups (CLI and history API).
    let out = Command::new(support::binary("coldaisle-collector")?)
        .args(["report", "--zone", "Z1", "--since", "1h", "--url", &api])
        .output()?;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in ["R1", "R2", "R3"] {
        assert!(
            table.contains(needle),
            "period report lacks {needle}:\n{table}"
        );
    }
    // The facility report in each format (issue 16): the CLI prints what the API serves.
    let cli = |args: &[&str]| -> Result<String> {
        let out = Command::new(support::binary("coldaisle-collector")?)
            .args(args)
            .args(["--url", &api])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let base = ["report", "--site", "lab1", "--zone", "Z1", "--since", "1h"];
    let json: serde_json::Value =
        serde_json::from_str(&cli(&[&base[..], &["--format", "json"]].concat())?)?;
    assert_eq!(json["schema"], 1, "{json}");
    let zone = &json["zones"][0];
    let racks: Vec<String> = zone["rows"]
        .as_array()
        .context("rows")?
        .iter()
        .flat_map(|r| r["racks"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["rack"].as_str().map(str::to_string))
        .collect();
    for rack in ["R1", "R2", "R3"] {
        assert!(racks.iter().any(|r| r == rack), "{rack} missing: {json}");
    }
    assert!(zone["inlet"]["samples"].as_u64() > Some(0), "{json}");
    assert!(
        !zone["hot_spots"]
            .as_array()
            .context("hot spots")?
            .is_empty(),
        "{json}"
    );
    assert!(
        !zone["open_problems"]
            .as_array()
            .context("problems")?
            .is_empty(),
        "{json}"
    );
    for (format, needles) in [
        (
            "table",
            &["ROW", "R1", "Hot spots", "prb-lab1-z1-thermal-"][..],
        ),
        ("markdown", &["## Zone Z1", "| R2 |", "**Hot spots"][..]),
        ("csv", &["site,zone,row,rack", "lab1,Z1,"][..]),
    ] {
        let text = cli(&[&base[..], &["--format", format]].concat())?;
        for needle in needles {
            assert!(text.contains(needle), "{format} lacks {needle}:\n{text}");
        }
    }
    let out = Command::new(support::binary("coldaisle-collector")?)
        .args(["report", "--zone", "Z1", "--since", "soon", "--url", &api])
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since"));
    let status = cli(&["status"])?;
    assert!(
        status.contains("e2e-agent") && status.contains("online"),
        "{status}"
    );
    let history = get_json(&format!("{api}/api/v1/history?site=lab1&zone=Z1&since=1h"))?;
    assert_eq!(history["level"], "minute", "{history}");
    let sensors = history["sensors"].as_array().context("sensors")?;
    assert!(
        sensors.iter().any(|s| s["count"].as_u64() > Some(0)),
        "{history}"
    );
    let out = Command::new(support::binary("coldaisle-collector")?)
        .args(["report", "--zone", "Z9", "--url", &api])
        .output()?;
    assert!(!out.status.success(), "an unknown zone is an error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Z9"));

    // Nothing lost, nothing duplicated: once the agent has drained, the collector holds every
    // seq 1..=N of the agent exactly once (records stored == contiguous ack), across the restart.
    agent.terminate()?;
    let info = wait_for(
        "the agent's records to be settled",
        Duration::from_secs(20),
        || {
            let agents = get_json(&format!("{api}/api/v1/agents")).ok()?;
            let info = agents.get("e2e-agent")?.clone();
            let status = info["status"]["state"].as_str()?;
            (status == "offline").then_some(info)
        },
    )
    .with_context(|| collector.log_tail())?;
    let acked = info["acked_upto"].as_u64().context("acked_upto")?;
    let records = info["records"].as_u64().context("records")?;
    assert!(acked > 10, "the agent sent events and summaries: {info}");
    assert_eq!(
        records, acked,
        "every seq stored once, none missing: {info}"
    );
    collector.check_alive()?;

    // A graceful stop writes a checkpoint; the next start restores it, replays no record, and
    // shows the same incidents, problems and record counts.
    let before = (
        get_json(&format!("{api}/api/v1/incidents"))?,
        get_json(&format!("{api}/api/v1/problems"))?,
    );
    collector.terminate()?;
    let mut collector = collector_files.start()?;
    let agents = wait_for(
        "the API after a graceful restart",
        Duration::from_secs(20),
        || get_json(&format!("{api}/api/v1/agents")).ok(),
    )
    .with_context(|| collector.log_tail())?;
    assert_eq!(agents["e2e-agent"]["records"].as_u64(), Some(records));
    let after = (
        get_json(&format!("{api}/api/v1/incidents"))?,
        get_json(&format!("{api}/api/v1/problems"))?,
    );
    assert_eq!(after, before);
    let log = collector.log();
    assert!(log.contains("checkpoint written"), "{log}");
    let start = log
        .lines()
        .rfind(|l| l.contains("state rebuilt from the store"))
        .context("start-up line")?;
    assert!(
        start.contains("\"records\":0") || start.contains("records=0"),
        "the restart replayed records: {start}"
    );
    collector.terminate()?;
    broker.stop();
    Ok(())
}

#[test]
fn check_config_names_file_line_and_key() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        "agent_id = \"a\"\nsite = \"s\"\nstate_dir = \"/tmp/x\"\n[mqtt]\nhost = \"h\"\nprot = 1883\n",
    )?;
    let out = Command::new(support::binary("coldaisle-agent")?)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("agent.toml:6"), "{stderr}");
    assert!(stderr.contains("prot"), "{stderr}");
    Ok(())
}

#[test]
fn example_configs_pass_check_config() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (binary, file) in [
        ("coldaisle-agent", "deploy/examples/agent.toml"),
        ("coldaisle-collector", "deploy/examples/collector.toml"),
    ] {
        let out = Command::new(support::binary(binary)?)
            .args(["check-config", "--config"])
            .arg(root.join(file))
            .output()?;
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
