//! The web dashboard in a real browser: mosquitto, snmpd serving four rack inlets (in four
//! ASHRAE bands) and a cooling unit's supply and return air, our agent and collector (with an
//! API token), and headless Chromium driven over WebDriver by `chromedriver`. It signs in with
//! the token, then checks what the pages show: the zone page from the facility report (rack
//! colours against the fed temperatures, the cooling unit's ΔT, the hot spots' ranks, a
//! published forecast in the "trending towards the limit" list), the
//! open incident in the incident list, an operator note in a problem's chronicle, the rack
//! chart (one history request), and the layout at phone width. Screenshots go to
//! `target/test-artifacts/` (paths printed).

mod webdriver;

use crate::api_access::new_token;
use crate::support::{
    collector_head, free_port, get_json, start_daemon, wait_for, wait_until_healthy,
};
use anyhow::{Context, Result};
use coldaisle_testkit::peers::{Mosquitto, SnmpValue, Snmpd, SnmpdOptions};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use webdriver::{ChromeDriver, Session};

const PROBE_TEMP: &str = "1.3.6.1.4.1.318.1.1.26.10.2.2.1.8";

/// The fed inlet temperatures (°C), the band the page must show and its colour
/// (`collector/assets/style.css`, ASHRAE A1 by default).
const RACKS: [(&str, f64, &str, &str); 4] = [
    ("R1", 22.0, "ok", "rgb(46, 125, 50)"),
    ("R2", 29.5, "warm", "rgb(249, 168, 37)"),
    ("R3", 34.5, "hot", "rgb(198, 40, 40)"),
    ("R4", 16.5, "cool", "rgb(100, 181, 246)"),
];

/// The cooling unit's sensors (no rack): id, kind, fed temperature (°C). Its ΔT is 11 °C.
const COOLING: [(&str, &str, f64); 2] = [
    ("crac1-supply", "supply_air_temp", 18.0),
    ("crac1-return", "return_air_temp", 29.0),
];

/// The operator note the problem's chronicle must show.
const NOTE: &str = "e2e: blanking panels ordered for R2 and R3";

/// The comment of the silence the silences page must list.
const SILENCE: &str = "e2e: CRAC filter change";

fn agent_config(dir: &Path, mqtt_port: u16, snmp_port: u16) -> String {
    let mut text = format!(
        r#"agent_id = "web-agent"
site = "lab1"
state_dir = "{state}"
summary_interval = "1s"
resend_after = "2s"

[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
username = "web-agent"
password_file = "{pass}"

[correlation]
window = "30s"
min_sensors = 2

[[devices]]
id = "pdu-a"
protocol = "snmp"
address = "127.0.0.1:{snmp_port}"
zone = "Z1"
community = "public"
poll_interval = "300ms"
timeout = "250ms"
"#,
        state = dir.join("agent-state").display(),
        pass = dir.join("agent.pass").display(),
    );
    for (n, (rack, ..)) in RACKS.iter().enumerate() {
        text.push_str(&format!(
            "\n[[devices.points]]\nsensor = \"{r}-inlet\"\nkind = \"inlet_temp\"\nrack = \"{rack}\"\n\
             oid = \"{PROBE_TEMP}.{i}\"\nscale = 0.1\n[devices.points.threshold]\nhigh = 27.0\n\
             min_duration = \"500ms\"\n",
            r = rack.to_lowercase(),
            i = n + 1
        ));
    }
    for (n, (sensor, kind, _)) in COOLING.iter().enumerate() {
        text.push_str(&format!(
            "\n[[devices.points]]\nsensor = \"{sensor}\"\nkind = \"{kind}\"\noid = \"{PROBE_TEMP}.{i}\"\nscale = 0.1\n",
            i = RACKS.len() + n + 1
        ));
    }
    text
}

fn collector_config(dir: &Path, mqtt_port: u16, http_port: u16, tokens: &Path) -> String {
    format!(
        r#"{head}
# One incident is enough for a problem here, so the page has a chronicle to show.
[problems]
min_incidents = 1
window = "30d"
"#,
        head = collector_head("web-collector", dir, mqtt_port, http_port, Some(tokens)),
    )
}

/// GET `url` with the bearer `token`, as JSON.
fn get_authed(url: &str, token: &str) -> Result<Value> {
    let mut response = ureq::get(url)
        .header("authorization", &format!("Bearer {token}"))
        .call()
        .with_context(|| format!("GET {url}"))?;
    Ok(serde_json::from_str(
        &response.body_mut().read_to_string()?,
    )?)
}

/// Where screenshots go: `target/test-artifacts/` of the build (`CARGO_TARGET_DIR` if set).
fn artifacts_dir() -> Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn save_screenshot(browser: &Session, name: &str) -> Result<PathBuf> {
    let path = artifacts_dir()?.join(name);
    std::fs::write(&path, browser.screenshot()?)?;
    println!("screenshot: {}", path.display());
    Ok(path)
}

/// Navigates to `hash` and waits until the page rendered it (`main[data-ready]`).
fn open(browser: &Session, base: &str, hash: &str) -> Result<()> {
    browser.goto(&format!("{base}/ui/{hash}"))?;
    browser.wait_for(
        &format!("page {hash}"),
        Duration::from_secs(20),
        &format!(
            "return document.getElementById('view').dataset.ready === {} || null",
            json!(hash)
        ),
    )?;
    Ok(())
}

#[test]
fn dashboard_in_a_real_browser_shows_bands_incidents_and_chronicles() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = Mosquitto::start(&[("web-agent", "agent-pass"), ("collector", "collector-pass")])?;
    let mut values = std::collections::BTreeMap::new();
    let fed = RACKS.iter().map(|r| r.1).chain(COOLING.iter().map(|c| c.2));
    for (n, celsius) in fed.enumerate() {
        values.insert(
            format!("{PROBE_TEMP}.{}", n + 1),
            SnmpValue::Integer((celsius * 10.0).round() as i32),
        );
    }
    let snmpd = Snmpd::start(SnmpdOptions {
        values,
        ..SnmpdOptions::default()
    })?;
    let (token, line) = new_token("ops", "read,operate")?;
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{line}\n"))?;
    std::fs::write(dir.path().join("agent.pass"), "agent-pass\n")?;
    let http_port = free_port()?;
    let api = format!("http://127.0.0.1:{http_port}");
    let collector = collector_config(dir.path(), broker.port(), http_port, &tokens);
    let collector = start_daemon(dir.path(), "coldaisle-collector", "collector", &collector)?;
    wait_until_healthy(&api)?;
    let agent = agent_config(dir.path(), broker.port(), snmpd.port());
    let agent = start_daemon(dir.path(), "coldaisle-agent", "agent", &agent)?;

    // The scenario as the API sees it: three racks read, an open thermal incident, a problem.
    let logs = || {
        format!(
            "agent log:\n{}\ncollector log:\n{}",
            agent.log_tail(),
            collector.log_tail()
        )
    };
    let incident = wait_for("an open thermal incident", Duration::from_secs(30), || {
        let list = get_authed(
            &format!("{api}/api/v1/incidents?status=open&zone=Z1"),
            &token,
        )
        .ok()?;
        list.as_array()?
            .iter()
            .find(|i| i["fingerprint"]["category"] == "thermal")
            .and_then(|i| i["id"].as_str().map(str::to_string))
    })
    .with_context(logs)?;
    let problem = wait_for("its problem", Duration::from_secs(30), || {
        let list = get_authed(&format!("{api}/api/v1/problems?zone=Z1"), &token).ok()?;
        list.as_array()?
            .iter()
            .find(|p| p["fingerprint"]["category"] == "thermal")
            .and_then(|p| p["id"].as_str().map(str::to_string))
    })
    .with_context(logs)?;
    wait_for(
        "every rack and the cooling unit in the facility report",
        Duration::from_secs(30),
        || {
            let report = get_authed(
                &format!("{api}/api/v1/report?site=lab1&zone=Z1&since=1h"),
                &token,
            )
            .ok()?;
            let zone = &report["zones"][0];
            let racks: Vec<&Value> = zone["rows"]
                .as_array()?
                .iter()
                .flat_map(|row| row["racks"].as_array().into_iter().flatten())
                .filter(|r| r["inlet"]["current"].is_number())
                .collect();
            let cooled = zone["cooling_units"]
                .as_array()?
                .iter()
                .any(|u| u["unit"] == "crac1" && u["delta_t_current"].is_number());
            (racks.len() == RACKS.len() && cooled).then_some(())
        },
    )
    .with_context(logs)?;
    // A forecast on R1's inlet, as an agent's forecast slot raises it: the zone page must list
    // it under "trending towards the limit" with the inlet's current value from the roll-ups.
    publish_forecast(broker.port())?;
    wait_for(
        "the forecast in the facility report",
        Duration::from_secs(30),
        || {
            let report = get_authed(
                &format!("{api}/api/v1/report?site=lab1&zone=Z1&since=1h"),
                &token,
            )
            .ok()?;
            let forecasts = report["zones"][0]["forecasts"].as_array()?;
            forecasts
                .iter()
                .any(|f| f["sensor"] == "r1-inlet" && f["current"].is_number())
                .then_some(())
        },
    )
    .with_context(logs)?;
    let mut note = ureq::post(&format!("{api}/api/v1/problems/{problem}/notes"))
        .header("authorization", &format!("Bearer {token}"))
        .header("content-type", "application/json")
        .send(json!({ "text": NOTE }).to_string())?;
    assert_eq!(
        note.status().as_u16(),
        200,
        "{}",
        note.body_mut().read_to_string()?
    );

    let mut silence = ureq::post(&format!("{api}/api/v1/silences"))
        .header("authorization", &format!("Bearer {token}"))
        .header("content-type", "application/json")
        .send(json!({ "zone": "Z1", "duration": "2h", "comment": SILENCE }).to_string())?;
    assert_eq!(
        silence.status().as_u16(),
        200,
        "{}",
        silence.body_mut().read_to_string()?
    );

    let driver = ChromeDriver::start(&dir.path().join("chromedriver.log"))?;
    let browser = driver.session()?;
    browser.viewport(1280, 800)?;

    // No token yet: the page asks for one; the token signs in.
    browser.goto(&format!("{api}/ui/"))?;
    browser.wait_for(
        "the sign-in form",
        Duration::from_secs(20),
        "return document.getElementById('signin') !== null || null",
    )?;
    save_screenshot(&browser, "dashboard-signin-1280x800.png")?;
    browser.type_into("#token", &token)?;
    browser.click("#signin button[type=submit]")?;
    browser.wait_for(
        "the site overview",
        Duration::from_secs(20),
        "return document.getElementById('view').dataset.ready === '#/' || null",
    )?;

    // Heat map: each rack in the band of its fed temperature, in that band's colour.
    open(&browser, &api, "#/zone/lab1/Z1")?;
    let tiles = browser.execute(
        "return [...document.querySelectorAll('.heatmap .rack')].map(e => ({
            rack: e.dataset.rack, band: e.dataset.band, text: e.innerText,
            colour: getComputedStyle(e).backgroundColor }))",
        json!([]),
    )?;
    let tiles = tiles.as_array().context("tiles")?;
    assert_eq!(tiles.len(), RACKS.len(), "{tiles:?}");
    for (rack, celsius, band, colour) in RACKS {
        let tile = tiles
            .iter()
            .find(|t| t["rack"] == rack)
            .with_context(|| format!("no tile for {rack}: {tiles:?}"))?;
        assert_eq!(tile["band"], band, "{rack} at {celsius} °C: {tile}");
        assert_eq!(tile["colour"], colour, "{rack}: {tile}");
        assert!(
            tile["text"]
                .as_str()
                .unwrap_or_default()
                .contains(&format!("{celsius:.1} °C")),
            "{rack} shows its temperature: {tile}"
        );
    }
    // The facility report's figures: the cooling unit's ΔT, the hot spots ranked by p95.
    let zone = browser.execute(
        "const unit = document.querySelector('#cooling-units tr[data-unit=\"crac1\"]');
         return {unit: unit && unit.innerText, delta: unit && Number(unit.dataset.deltaT),
                 spots: [...document.querySelectorAll('#hot-spots tbody tr')]
                     .map(r => ({rank: Number(r.dataset.rank), sensor: r.dataset.sensor})),
                 above: document.getElementById('zone-above').innerText,
                 period: document.getElementById('period').innerText}",
        json!([]),
    )?;
    assert!(
        zone["delta"]
            .as_f64()
            .is_some_and(|d| (d - 11.0).abs() < 1e-6),
        "ΔT now of crac1: {zone}"
    );
    assert!(
        zone["unit"].as_str().is_some_and(|t| t.contains("11.0 °C")
            && t.contains("18.0 °C")
            && t.contains("29.0 °C")),
        "the unit's row shows supply, return and ΔT: {zone}"
    );
    // R3 (34.5 °C) is above the allowable band, R2 (29.5 °C) above the recommended one.
    assert_eq!(
        zone["spots"],
        json!([{"rank": 1, "sensor": "r3-inlet"}, {"rank": 2, "sensor": "r2-inlet"}]),
        "{zone}"
    );
    assert!(
        zone["period"].as_str().is_some_and(|p| p.contains("24h")),
        "{zone}"
    );
    // The sensors trending towards their limit: sensor, rack, current value, limit, crossing.
    let trending = browser.execute(
        "const row = document.querySelector('#trending tr[data-sensor=\"r1-inlet\"]');
         return row && [...row.querySelectorAll('td')].map(c => c.innerText)",
        json!([]),
    )?;
    let cells: Vec<&str> = trending
        .as_array()
        .with_context(|| format!("no trending row for r1-inlet: {trending}"))?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(cells.len(), 6, "{trending}");
    assert_eq!(
        &cells[..4],
        ["r1-inlet", "R1", "22.0 °C", "27.0 °C"],
        "{trending}"
    );
    assert!(
        cells[4].len() >= 16 && cells[4] != "—",
        "expected crossing shown: {trending}"
    );
    save_screenshot(&browser, "dashboard-zone-1280x800.png")?;

    // The incident list lists the open incident.
    open(&browser, &api, "#/incidents")?;
    let rows = browser.execute(
        "return [...document.querySelectorAll('#incident-list tbody tr')].map(r => r.innerText)",
        json!([]),
    )?;
    let open_row = rows
        .as_array()
        .context("rows")?
        .iter()
        .filter_map(Value::as_str)
        .find(|r| r.contains(&incident))
        .with_context(|| format!("incident {incident} not listed: {rows}"))?;
    assert!(open_row.contains("open"), "{open_row}");
    save_screenshot(&browser, "dashboard-incidents-1280x800.png")?;

    // The problem's chronicle shows the operator's note.
    open(&browser, &api, &format!("#/problem/{problem}"))?;
    let chronicle = browser.execute(
        "return [...document.querySelectorAll('#chronicle li')].map(l => ({kind: l.dataset.kind, text: l.innerText}))",
        json!([]),
    )?;
    let entries = chronicle.as_array().context("chronicle")?;
    assert!(
        entries
            .iter()
            .any(|e| e["kind"] == "operator"
                && e["text"].as_str().unwrap_or_default().contains(NOTE)),
        "the note is in the chronicle: {chronicle}"
    );
    save_screenshot(&browser, "dashboard-problem-1280x800.png")?;

    // The rack page draws its 24-hour chart from the roll-ups, in one history request.
    browser.execute("performance.clearResourceTimings(); return null", json!([]))?;
    open(&browser, &api, "#/rack/lab1/Z1/R3")?;
    let chart = browser.execute(
        "const box = document.getElementById('rack-chart');
         return {points: Number(box.dataset.points), svg: box.querySelectorAll('svg polyline').length,
                 band: document.getElementById('rack-now').dataset.band,
                 history: performance.getEntriesByType('resource')
                     .filter(e => e.name.includes('/api/v1/history')).length}",
        json!([]),
    )?;
    assert!(chart["points"].as_u64() >= Some(1), "{chart}");
    assert_eq!(
        chart["history"], 1,
        "one history request per chart: {chart}"
    );
    assert!(chart["svg"].as_u64() >= Some(1), "{chart}");
    assert_eq!(chart["band"], "hot", "{chart}");
    save_screenshot(&browser, "dashboard-rack-1280x800.png")?;

    // The silences page lists the active silence.
    open(&browser, &api, "#/silences")?;
    let silences = browser.execute(
        "return [...document.querySelectorAll('main tbody tr')].map(r => r.innerText)",
        json!([]),
    )?;
    assert!(
        silences.as_array().is_some_and(|rows| rows.iter().any(|r| {
            let r = r.as_str().unwrap_or_default();
            r.contains(SILENCE) && r.contains("active") && r.contains("Z1")
        })),
        "{silences}"
    );

    // Phone width: one column, nothing wider than the screen.
    browser.viewport(390, 844)?;
    open(&browser, &api, "#/")?;
    let layout = browser.execute(
        "return {width: window.innerWidth, scroll: document.documentElement.scrollWidth,
                 columns: getComputedStyle(document.querySelector('.totals')).gridTemplateColumns.split(' ').length,
                 tiles: document.querySelectorAll('.heatmap .rack').length}",
        json!([]),
    )?;
    assert_eq!(layout["width"], 390, "{layout}");
    assert!(
        layout["scroll"].as_u64() <= Some(390),
        "no sideways scroll: {layout}"
    );
    assert_eq!(layout["columns"], 2, "{layout}");
    assert_eq!(layout["tiles"], RACKS.len(), "{layout}");
    save_screenshot(&browser, "dashboard-overview-390x844.png")?;
    open(&browser, &api, "#/zone/lab1/Z1")?;
    let zone_layout = browser.execute(
        "return {scroll: document.documentElement.scrollWidth,
                 tiles: document.querySelectorAll('.heatmap .rack').length,
                 units: document.querySelectorAll('#cooling-units tbody tr').length}",
        json!([]),
    )?;
    assert!(
        zone_layout["scroll"].as_u64() <= Some(390),
        "no sideways scroll on the zone page: {zone_layout}"
    );
    assert_eq!(zone_layout["tiles"], RACKS.len(), "{zone_layout}");
    assert!(zone_layout["units"].as_u64() >= Some(1), "{zone_layout}");
    save_screenshot(&browser, "dashboard-zone-390x844.png")?;
    open(&browser, &api, &format!("#/problem/{problem}"))?;
    save_screenshot(&browser, "dashboard-problem-390x844.png")?;
    Ok(())
}

/// Publishes one open forecast on Z1's `r1-inlet` (rack R1: value 25 °C, limit 27 °C, crossing
/// in 20 minutes) as a second agent of site lab1, with mosquitto_pub (QoS 1).
fn publish_forecast(port: u16) -> Result<()> {
    use coldaisle_core::wire::{Batch, Payload, Record, SCHEMA_VERSION};
    use coldaisle_core::{
        Category, EventState, Location, SensorEvent, SensorKind, Severity, Timestamp,
        FORECAST_DETECTOR,
    };
    let ts = Timestamp::now();
    let event = SensorEvent {
        sensor: "r1-inlet".into(),
        kind: SensorKind::InletTemp,
        location: Location {
            site: "lab1".into(),
            zone: "Z1".into(),
            row: None,
            rack: Some("R1".into()),
        },
        category: Category::Thermal,
        detector: FORECAST_DETECTOR.into(),
        state: EventState::Raised,
        severity: Severity::Warning,
        value: 25.0,
        limit: Some(27.0),
        first_ts: ts,
        ts,
        expected_crossing: Some(ts.plus(Duration::from_secs(20 * 60))),
    };
    let (site, agent) = ("lab1", "web-forecaster");
    let batch = Batch {
        schema: SCHEMA_VERSION,
        agent: agent.into(),
        site: site.into(),
        floor: 1,
        records: vec![Record {
            schema: SCHEMA_VERSION,
            agent: agent.into(),
            site: site.into(),
            seq: 1,
            payload: Payload::SensorEvent(event),
            instance: None,
        }],
        dropped: Vec::new(),
        instance: None,
    };
    let status = std::process::Command::new(coldaisle_testkit::peers::find_executable(
        "mosquitto_pub",
        "mosquitto-clients",
    )?)
    .args(["-h", "127.0.0.1", "-p", &port.to_string()])
    .args(["-u", "collector", "-P", "collector-pass", "-q", "1"])
    .args(["-t", &format!("coldaisle/v1/{site}/{agent}/events"), "-m"])
    .arg(serde_json::to_string(&batch)?)
    .status()?;
    anyhow::ensure!(status.success(), "mosquitto_pub failed: {status}");
    Ok(())
}

/// `demo --serve`: after the story it prints the dashboard's URL, the page and the API answer
/// there, and Ctrl-C (SIGINT) ends the demo with success.
#[test]
fn demo_serve_prints_the_dashboard_url_and_stops_on_ctrl_c() -> Result<()> {
    use std::io::BufRead as _;
    let mut demo = std::process::Command::new(crate::support::binary("coldaisle-demo")?)
        .args(["demo", "--serve"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let stdout = demo.stdout.take().context("demo stdout")?;
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let url = loop {
        match lines.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix("dashboard: ") {
                    break rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                }
                seen.push(line);
            }
            Err(e) => {
                let _ = demo.kill();
                anyhow::bail!(
                    "no dashboard URL from demo --serve ({e}); it printed:\n{}",
                    seen.join("\n")
                );
            }
        }
    };
    let served = (|| -> Result<()> {
        assert!(
            url.starts_with("http://127.0.0.1:") && url.ends_with("/ui/"),
            "{url}"
        );
        let mut page = ureq::get(&url).call()?;
        assert!(page.body_mut().read_to_string()?.contains("app.js"));
        let api = url.trim_end_matches("/ui/");
        let problems = get_json(&format!("{api}/api/v1/problems"))?;
        assert_eq!(problems.as_array().map(Vec::len), Some(1), "{problems}");
        Ok(())
    })();
    let signalled = std::process::Command::new("kill")
        .args(["-INT", &demo.id().to_string()])
        .status()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = demo.try_wait()? {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = demo.kill();
            anyhow::bail!("demo --serve still running 30 s after Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    served?;
    assert!(signalled.success());
    assert!(status.success(), "demo ended with {status}");
    Ok(())
}
