use super::*;
use coldaisle_core::Timestamp;

fn settings(kind: SensorKind) -> ReplaySettings {
    ReplaySettings {
        kind,
        detection: DetectionConfig::default(),
        point: None,
        fahrenheit: false,
        sort: false,
    }
}

/// Ten hours of one-minute samples at 22 °C with an overheat to 30 °C from 02:00 to 03:00.
fn overheat_csv() -> String {
    let mut csv = String::from("timestamp,value\n");
    for m in 0..600 {
        let v = if (120..180).contains(&m) {
            30.0
        } else {
            22.0 + (m % 3) as f64 * 0.1
        };
        csv.push_str(&format!("2026-11-25 {:02}:{:02}:00,{v}\n", m / 60, m % 60));
    }
    csv
}

#[test]
fn overheat_gives_threshold_and_rate_transitions_as_json_lines() {
    let out = replay(&overheat_csv(), &settings(SensorKind::InletTemp))
        .expect("replay")
        .lines;
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let summary: Vec<(String, String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["ts"].as_str().unwrap_or("").to_string(),
                l["state"].as_str().unwrap_or("").to_string(),
                l["detector"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        summary.contains(&(
            "2026-11-25T02:05:00.000Z".into(),
            "raised".into(),
            "threshold".into()
        )),
        "{out}"
    );
    assert!(
        summary.contains(&(
            "2026-11-25T03:00:00.000Z".into(),
            "cleared".into(),
            "threshold".into()
        )),
        "{out}"
    );
    assert!(
        summary
            .iter()
            .any(|s| s.2 == "rate_of_change_15m" && s.1 == "raised"),
        "{out}"
    );
    for l in &lines {
        assert!(l["severity"].is_string() && l["value"].is_number(), "{l}");
    }
    assert!(
        !summary.iter().any(|s| s.2 == "threshold_critical"),
        "30 °C is inside A1"
    );
}

#[test]
fn same_input_same_bytes() {
    let csv = overheat_csv();
    let a = replay(&csv, &settings(SensorKind::InletTemp))
        .expect("replay")
        .lines;
    let b = replay(&csv, &settings(SensorKind::InletTemp))
        .expect("replay")
        .lines;
    assert!(!a.is_empty());
    assert_eq!(a, b);
}

#[test]
fn generic_temperature_has_no_room_air_rules_and_fahrenheit_is_converted() {
    // 86 °F = 30 °C for an hour: inlet_temp raises `threshold` and a rate of change; the
    // generic temperature has neither (its learned baseline is still warming up).
    let mut csv = String::from("timestamp,value\n");
    for m in 0..600 {
        let f = if (120..180).contains(&m) {
            86.0
        } else {
            71.6 + (m % 3) as f64 * 0.18
        };
        csv.push_str(&format!("2026-11-25T{:02}:{:02}:00Z,{f}\n", m / 60, m % 60));
    }
    let mut s = settings(SensorKind::Temperature);
    s.fahrenheit = true;
    let generic = replay(&csv, &s).expect("replay");
    assert_eq!(generic.lines, "", "no limits, no rate limits");
    assert_eq!(generic.summary.rows, 600);
    let inlet = replay(
        &csv,
        &ReplaySettings {
            kind: SensorKind::InletTemp,
            ..s
        },
    )
    .expect("replay")
    .lines;
    let threshold: serde_json::Value = inlet
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .find(|l| l["detector"] == "threshold")
        .expect("a threshold line");
    // 86 °F → 30 °C, compared with the 27 °C limit.
    assert_eq!(threshold["value"], 30.0, "{inlet}");
    assert_eq!(threshold["limit"], 27.0);
    assert!(inlet.contains("\"rate_of_change_15m\""), "{inlet}");
}

#[test]
fn bad_rows_name_the_line() {
    let e = replay(
        "ts,v\n2026-11-25 00:00:00,1\nyesterday,2\n",
        &settings(SensorKind::Humidity),
    )
    .expect_err("bad timestamp");
    assert!(
        e.to_string().starts_with("line 3: timestamp `yesterday`"),
        "{e}"
    );
    let e = replay(
        "ts,v\n2026-11-25 00:00:00,abc\n",
        &settings(SensorKind::Humidity),
    )
    .expect_err("bad value");
    assert!(e.to_string().starts_with("line 2: value `abc`"), "{e}");
}

/// The overheat trace with its 02:00–02:59 hour written twice (a repeated hour in an export).
fn repeated_hour_csv() -> String {
    let clean = overheat_csv();
    let repeat: Vec<&str> = clean
        .lines()
        .filter(|l| l.starts_with("2026-11-25 02:"))
        .collect();
    let mut out = String::new();
    for line in clean.lines() {
        out.push_str(line);
        out.push('\n');
        if line.starts_with("2026-11-25 03:00:00") {
            for r in &repeat {
                out.push_str(r);
                out.push('\n');
            }
        }
    }
    out
}

#[test]
fn rows_stepping_back_are_skipped_and_the_rest_replays_as_without_them() {
    let clean = replay(&overheat_csv(), &settings(SensorKind::InletTemp)).expect("replay");
    let messy = replay(&repeated_hour_csv(), &settings(SensorKind::InletTemp)).expect("replay");
    assert_eq!(messy.summary.skipped.len(), 60, "{}", messy.summary);
    assert_eq!(messy.summary.rows, 660);
    assert_eq!(messy.lines, clean.lines, "skipped rows reach no detector");
    assert!(clean.summary.raises >= 2, "{}", clean.summary);
    assert_eq!(
        clean.summary.raises,
        clean.lines.matches("\"raised\"").count()
    );
    assert_eq!(
        clean.summary.clears,
        clean.lines.matches("\"cleared\"").count()
    );
    let text = messy.summary.to_string();
    assert!(
        text.starts_with("replay: 660 rows, 60 skipped (earlier than a row before them: line 183, 184, 185, 186, 187, …; --sort"),
        "{text}"
    );
    assert!(
        text.contains(", 0 duplicate timestamps, 0 gaps, "),
        "{text}"
    );
}

#[test]
fn sort_replays_every_row_and_reports_duplicates_and_gaps() {
    let mut s = settings(SensorKind::InletTemp);
    s.sort = true;
    let sorted = replay(&repeated_hour_csv(), &s).expect("replay");
    assert!(sorted.summary.skipped.is_empty());
    assert_eq!(sorted.summary.duplicates, 60);
    // Drop 04:00–05:59 from the clean trace: one gap of two hours and a minute.
    let holed: String = overheat_csv()
        .lines()
        .filter(|l| !l.starts_with("2026-11-25 04:") && !l.starts_with("2026-11-25 05:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let r = replay(&holed, &settings(SensorKind::InletTemp)).expect("replay");
    assert_eq!(r.summary.gaps.len(), 1);
    assert!(
        r.summary
            .to_string()
            .contains("1 gaps (longest 2h 1m from 2026-11-25T03:59:00.000Z)"),
        "{}",
        r.summary
    );
}

#[test]
fn every_kind_parses() {
    for k in coldaisle_config::detection::ALL_KINDS {
        assert_eq!(parse_kind(k.as_str()), Ok(k));
    }
    assert!(parse_kind("inlet").is_err());
}

#[test]
fn config_and_sensor_give_that_sensors_settings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        r#"
agent_id = "a1"
site = "s1"
state_dir = "/tmp/unused"
[mqtt]
host = "127.0.0.1"
[detection.inlet_temp]
warning_high = 24.0
min_duration = "0s"
[[devices]]
id = "pdu"
protocol = "snmp"
address = "127.0.0.1"
zone = "Z1"
[[devices.points]]
sensor = "r1"
kind = "inlet_temp"
oid = "1.3.6.1.4.1.1.1"
[[devices.points]]
sensor = "r2"
kind = "inlet_temp"
oid = "1.3.6.1.4.1.1.2"
[devices.points.threshold]
high = 29.0
"#,
    )
    .expect("write");
    let csv = dir.path().join("t.csv");
    std::fs::write(&csv, "timestamp,value\n2026-11-25T00:00:00Z,25\n").expect("write");
    let args = |sensor: &str, kind: Option<&str>| ReplayArgs {
        csv: csv.clone(),
        kind: kind.map(String::from),
        config: Some(config.clone()),
        sensor: Some(sensor.into()),
        unit: "C".into(),
        sort: false,
    };
    let r1 = super::settings(&args("r1", None)).expect("r1");
    let out = replay("ts,v\n2026-11-25T00:00:00Z,25\n", &r1)
        .expect("replay")
        .lines;
    assert!(out.contains("\"limit\":24.0"), "[detection] applies: {out}");
    let r2 = super::settings(&args("r2", Some("inlet_temp"))).expect("r2");
    assert_eq!(
        r2.point.as_ref().map(|t| t.high),
        Some(29.0),
        "the point's own threshold"
    );
    let e = super::settings(&args("r2", Some("humidity"))).expect_err("contradiction");
    assert!(e.to_string().contains("contradicts"), "{e}");
    let e = super::settings(&args("nope", None)).expect_err("unknown sensor");
    assert!(e.to_string().contains("no sensor `nope`"), "{e}");
}

/// The daemon's pipeline and `replay --config --sensor` give the same transitions for the same
/// samples, detector by detector, in the same order: replay is the daemon's chain.
#[test]
fn replay_gives_the_daemons_transitions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("agent.toml");
    let text = r#"
agent_id = "a1"
site = "s1"
state_dir = "/tmp/unused"
[mqtt]
host = "127.0.0.1"
[detection]
derived_inlet_over_supply = false
[[devices]]
id = "probe"
protocol = "snmp"
address = "127.0.0.1"
zone = "Z1"
[[devices.points]]
sensor = "r1"
kind = "inlet_temp"
oid = "1.3.6.1.4.1.1.1"
[[devices.points]]
sensor = "m1"
kind = "temperature"
oid = "1.3.6.1.4.1.1.2"
"#;
    std::fs::write(&config_path, text).expect("write");
    let config = AgentConfig::load(&config_path).expect("config");
    let mut pipeline = crate::pipeline::Pipeline::new(&config);
    // Three days of 5-minute samples: a daily cycle, an overheat on day 2, a level shift of the
    // machine temperature on day 3.
    let sample = |i: i64| {
        let day = (i as f64) / 288.0 * std::f64::consts::TAU;
        let inlet = 22.0 + day.sin() + if (400..430).contains(&i) { 8.0 } else { 0.0 };
        let machine = 60.0 + 4.0 * day.sin() + if i >= 700 { 9.0 } else { 0.0 };
        let noise = ((i * 37) % 7) as f64 * 0.05;
        (inlet + noise, machine + noise)
    };
    let mut daemon: Vec<(String, String, String, i64)> = Vec::new();
    let (mut csv_r1, mut csv_m1) = (
        String::from("timestamp,value\n"),
        String::from("timestamp,value\n"),
    );
    for i in 0..3 * 288 {
        let ts = Timestamp(1_764_547_200_000 + i * 300_000);
        let (r1, m1) = sample(i);
        csv_r1.push_str(&format!("{},{r1}\n", ts.to_rfc3339()));
        csv_m1.push_str(&format!("{},{m1}\n", ts.to_rfc3339()));
        let outcome = crate::poller::PollOutcome {
            device: 0,
            ts,
            result: Ok(vec![Ok(r1), Ok(m1)]),
        };
        for p in pipeline.observe(&outcome) {
            if let coldaisle_core::wire::Payload::SensorEvent(e) = p {
                daemon.push((
                    e.sensor,
                    e.detector,
                    format!("{:?}", e.state).to_lowercase(),
                    e.ts.millis(),
                ));
            }
        }
    }
    let mut replayed = Vec::new();
    for (sensor, csv) in [("r1", &csv_r1), ("m1", &csv_m1)] {
        let args = ReplayArgs {
            csv: config_path.clone(),
            kind: None,
            config: Some(config_path.clone()),
            sensor: Some(sensor.into()),
            unit: "C".into(),
            sort: false,
        };
        let out = replay(csv, &super::settings(&args).expect("settings")).expect("replay");
        for line in out.lines.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("json");
            let ts = Timestamp::parse(v["ts"].as_str().expect("ts")).expect("rfc 3339");
            replayed.push((
                sensor.to_string(),
                v["detector"].as_str().expect("detector").to_string(),
                v["state"].as_str().expect("state").to_string(),
                ts.millis(),
            ));
        }
    }
    let by_sensor = |events: &[(String, String, String, i64)], s: &str| -> Vec<_> {
        events.iter().filter(|e| e.0 == s).cloned().collect()
    };
    for s in ["r1", "m1"] {
        let d = by_sensor(&daemon, s);
        assert!(!d.is_empty(), "{s} has transitions");
        assert_eq!(d, by_sensor(&replayed, s), "{s}");
    }
    assert!(
        daemon.iter().any(|e| e.1 == "learned_baseline"),
        "{daemon:?}"
    );
    assert!(daemon.iter().any(|e| e.1 == "threshold"), "{daemon:?}");
}

/// Rack power (kW), one sample a minute from 00:00: 4 kW with ±0.15 kW of noise, and
/// `level(minute)` on top.
fn rack_power_csv(minutes: u32, extra: impl Fn(u32) -> f64) -> String {
    let mut csv = String::from("timestamp,value\n");
    for m in 0..minutes {
        let noise = f64::from(m * 37 % 7) * 0.05 - 0.15;
        let v = 4.0 + noise + extra(m);
        csv.push_str(&format!(
            "2026-11-25 {:02}:{:02}:00,{v:.3}\n",
            m / 60,
            m % 60
        ));
    }
    csv
}

fn raises(csv: &str, kind: SensorKind) -> Vec<serde_json::Value> {
    replay(csv, &settings(kind))
        .expect("replay")
        .lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json line"))
        .filter(|l| l["state"] == "raised")
        .collect()
}

#[test]
fn a_sustained_rack_power_step_is_one_info_event_with_both_levels() {
    // +2 kW from 02:00, held for the last hour of the replay.
    let csv = rack_power_csv(180, |m| if m >= 120 { 2.0 } else { 0.0 });
    let raised = raises(&csv, SensorKind::RackPower);
    assert_eq!(raised.len(), 1, "{raised:?}");
    let e = &raised[0];
    assert_eq!(e["detector"], "step_change");
    assert_eq!(e["severity"], "info");
    let after = e["value"].as_f64().expect("after level");
    let before = e["limit"].as_f64().expect("before level");
    assert!((after - 6.0).abs() < 0.2, "after {after}");
    assert!((before - 4.0).abs() < 0.2, "before {before}");
    let ts = e["ts"].as_str().unwrap_or("");
    assert!(
        ts.starts_with("2026-11-25T02:2") || ts.starts_with("2026-11-25T02:30"),
        "{ts}"
    );
}

#[test]
fn a_five_minute_rack_power_spike_raises_nothing() {
    let csv = rack_power_csv(240, |m| if (120..125).contains(&m) { 2.0 } else { 0.0 });
    let raised = raises(&csv, SensorKind::RackPower);
    assert!(raised.is_empty(), "{raised:?}");
}

#[test]
fn a_slow_inlet_climb_replays_as_a_forecast_with_its_crossing() {
    // 22 °C for an hour, then +0.1 °C a minute: 27 °C (the inlet warning limit) at 01:50.
    let mut csv = String::from("timestamp,value\n");
    for m in 0..150 {
        let v = if m < 60 {
            22.0
        } else {
            22.0 + 0.1 * (m - 60) as f64
        };
        csv.push_str(&format!(
            "2026-11-25 {:02}:{:02}:00,{v:.1}\n",
            m / 60,
            m % 60
        ));
    }
    let out = replay(&csv, &settings(SensorKind::InletTemp)).expect("replay");
    let lines: Vec<serde_json::Value> = out
        .lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let forecasts: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["detector"] == "forecast")
        .collect();
    let raise = forecasts
        .iter()
        .find(|l| l["state"] == "raised")
        .unwrap_or_else(|| panic!("no forecast raise: {}", out.lines));
    let crossing = raise["expected_crossing"]
        .as_str()
        .and_then(|c| Timestamp::parse(c).ok())
        .unwrap_or_else(|| panic!("no crossing: {raise}"));
    let at_limit = Timestamp::parse("2026-11-25T01:50:00Z").expect("time");
    let raised_at = raise["ts"]
        .as_str()
        .and_then(|c| Timestamp::parse(c).ok())
        .expect("ts");
    assert!(
        crossing.since(at_limit).as_secs() <= 120 && at_limit.since(crossing).as_secs() <= 120,
        "crossing {crossing} vs 01:50: {raise}"
    );
    assert!(
        at_limit.since(raised_at).as_secs() >= 20 * 60,
        "warned at least 20 min ahead: {raise}"
    );
    assert_eq!(raise["limit"], 27.0);
    // Once the limit is reached the threshold takes over and the forecast clears.
    assert!(
        forecasts.iter().any(|l| l["state"] == "cleared"),
        "{}",
        out.lines
    );
    assert!(
        out.lines.contains("\"detector\":\"threshold\""),
        "{}",
        out.lines
    );
}
