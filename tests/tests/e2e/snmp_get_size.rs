//! The GET size a device takes (`agent/src/snmp/get_size.rs`), against real peers: net-snmp's
//! snmpd with a small `sendMessageMaxSize` (it drops a larger answer without a word, "send
//! response: Too long" in its log), v1 noSuchName inside a large GET, and the default of 50
//! OIDs per GET fitting one Ethernet frame on the testkit simulator, which answers tooBig
//! above a set message size.

use anyhow::{Context, Result};
use coldaisle_agent::snmp::poll::SnmpPoller;
use coldaisle_config::AgentConfig;
use coldaisle_testkit::peers::{SnmpValue, Snmpd, SnmpdOptions};
use coldaisle_testkit::snmp_sim::{SimValue, SnmpSim};
use std::fmt::Write as _;
use std::path::Path;

/// A 40-row test column under snmpd's test subtree (OIDs of 11 arcs).
const COLUMN: &str = "1.3.6.1.4.1.318.9.1.2";
/// rPDU2SensorTempHumidityStatusTempC (tenths °C), the longest OIDs of DEVICES.md (16 arcs).
const RPDU2_TEMP: &str = "1.3.6.1.4.1.318.1.1.26.10.2.2.1.8";

/// Agent config of one SNMP device at `address` reading `oids`, `[devices.snmp]` = `snmp`.
fn config(address: &str, community: &str, snmp: &str, oids: &[String]) -> Result<AgentConfig> {
    let mut text = format!(
        "agent_id = \"g\"\nsite = \"lab\"\nstate_dir = \"/tmp/unused\"\n[mqtt]\nhost = \"h\"\n\
         [[devices]]\nid = \"small-ups\"\nprotocol = \"snmp\"\naddress = \"{address}\"\n\
         zone = \"Z1\"\ncommunity = \"{community}\"\npoll_interval = \"5s\"\ntimeout = \"3s\"\n\
         [devices.snmp]\n{snmp}"
    );
    for (i, oid) in oids.iter().enumerate() {
        write!(
            text,
            "[[devices.points]]\nsensor = \"p{i}\"\nkind = \"temperature\"\noid = \"{oid}\"\n"
        )?;
    }
    AgentConfig::from_str(&text, Path::new("get-size.toml")).context("test config")
}

#[tokio::test]
async fn snmpd_dropping_large_answers_gets_smaller_gets_and_v1_keeps_the_batch() -> Result<()> {
    let mut options = SnmpdOptions {
        // RFC 3417's minimum message size: an answer of 40 of these OIDs (≈ 830 octets, 20
        // per varbind) is dropped, one of 20 (≈ 430) is sent.
        extra_conf: vec!["[snmp] sendMessageMaxSize 484".into()],
        ..SnmpdOptions::default()
    };
    for row in 1..=40 {
        options
            .values
            .insert(format!("{COLUMN}.{row}"), SnmpValue::Integer(100_000 + row));
    }
    let snmpd = Snmpd::start(options)?;
    let oids: Vec<String> = (1..=40).map(|row| format!("{COLUMN}.{row}")).collect();
    let want: Vec<_> = (1..=40).map(|row| Ok(f64::from(100_000 + row))).collect();
    // The default GET size (50: all 40 OIDs in one GET).
    let quick = "request_timeout = \"1s\"\nretries = 1\n";
    let device = config(&snmpd.addr().to_string(), snmpd.community(), quick, &oids)?;
    assert_eq!(device.devices[0].snmp.max_oids_per_request, 50);
    let mut poller = SnmpPoller::new(&device.devices[0])?;
    // 40 OIDs: no answer at all, so the poll fails as for a dead device; nothing lowered yet.
    let err = poller
        .poll()
        .await
        .expect_err("snmpd drops the 40-OID answer");
    assert!(format!("{err}").contains("no answer"), "{err}");
    assert_eq!(poller.get_size(), 50);
    // The next poll asks one OID first: answered, so the size of the unanswered GET was the
    // problem → half of it, 20: every point read. (A poll more if the machine is so loaded
    // that the probe goes unanswered; the sizes are the same.)
    let mut sizes = vec![50];
    let mut read = None;
    for _ in 0..5 {
        let result = poller.poll().await;
        if sizes.last() != Some(&poller.get_size()) {
            sizes.push(poller.get_size());
        }
        if let Ok(readings) = result {
            read = Some(readings);
            break;
        }
    }
    assert_eq!(sizes, [50, 20]);
    assert_eq!(read, Some(want.clone()));
    // Remembered: the next poll asks 20 + 20 OIDs straight away, no probe.
    let before = poller.requests_sent();
    assert_eq!(poller.poll().await?, want);
    assert_eq!(poller.requests_sent() - before, 2);

    // v1, a missing OID in the middle of a GET: snmpd answers noSuchName naming it; only that
    // point fails, the GET is asked again without it.
    let mut with_gap = oids[..10].to_vec();
    with_gap.insert(5, format!("{COLUMN}.99"));
    let v1 = config(
        &snmpd.addr().to_string(),
        snmpd.community(),
        "version = \"1\"\n",
        &with_gap,
    )?;
    let mut poller = SnmpPoller::new(&v1.devices[0])?;
    let readings = poller.poll().await?;
    for (i, reading) in readings.iter().enumerate() {
        match i {
            5 => assert!(
                reading
                    .as_ref()
                    .is_err_and(|e| e.contains("noSuchName") && e.contains(".99")),
                "{reading:?}"
            ),
            _ => {
                let row = if i < 5 { i + 1 } else { i };
                assert_eq!(*reading, Ok(100_000.0 + row as f64), "point {i}");
            }
        }
    }
    // One GET of 11 (noSuchName), then the 10 others in one GET.
    assert_eq!(poller.requests_sent(), 2);
    Ok(())
}

#[tokio::test]
async fn fifty_long_oids_fit_one_ethernet_frame_and_too_big_is_remembered() -> Result<()> {
    let sim = SnmpSim::start("public").await?;
    let oids: Vec<String> = (1001..=1050).map(|i| format!("{RPDU2_TEMP}.{i}")).collect();
    for oid in &oids {
        // Four-digit tenths of a degree: two octets each, as real readings are.
        sim.set(oid, SimValue::Integer(2350))
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    let device = config(&sim.addr().to_string(), "public", "", &oids)?;
    let mut poller = SnmpPoller::new(&device.devices[0])?;
    let want = vec![Ok(2350.0); 50];
    // The default: one GET of 50, answered whole within 1,472 octets (no IP fragmentation).
    sim.set_max_response_bytes(1_472);
    assert_eq!(poller.poll().await?, want);
    assert_eq!(poller.requests_sent(), 1);
    // ... and the answer is above 1,100 octets, so the figure in the docs is not loose:
    // a device of that size answers tooBig, and gets 25 OIDs per GET from then on.
    sim.set_max_response_bytes(1_100);
    assert_eq!(poller.poll().await?, want);
    assert_eq!(poller.requests_sent(), 1 + 3);
    assert_eq!(poller.get_size(), 25);
    assert_eq!(poller.poll().await?, want);
    assert_eq!(poller.requests_sent(), 1 + 3 + 2);
    Ok(())
}
