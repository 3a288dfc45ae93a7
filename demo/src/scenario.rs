//! The demo's time-compressed scenario and its narration: act 1 runs the live site; act 2
//! ([`story`]) replays five weeks of one zone by event time to show a problem explaining and
//! verifying itself.

mod story;

use crate::broker;
use crate::site::{self, Site};
use anyhow::Context as _;
use coldaisle_agent::RunningAgent;
use coldaisle_collector::cooling_cause;
use coldaisle_collector::render::{render_problem, render_zone_report};
use coldaisle_collector::report::zone_report;
use coldaisle_collector::RunningCollector;
use coldaisle_config::{AgentConfig, CollectorConfig};
use coldaisle_core::Timestamp;
use std::path::Path;
use std::time::Duration;
use tokio::time::{sleep, Instant};

/// One step of the story: at `at` seconds, set these racks' inlet temperatures (and, when
/// given, the InRow cooler's supply and return air).
struct Step {
    at: f64,
    racks: &'static [&'static str],
    celsius: f64,
    cooler: Option<(f64, f64)>,
    say: &'static str,
}

/// The InRow's normal supply and return air (°C).
const COOLER_NORMAL: Option<(f64, f64)> = Some((18.0, 30.0));

/// The readings compared around each incident's opening, at the story's compressed time
/// (summaries every 2 s): the baseline over the 6 s before, the peak within 3 s.
const CAUSE_WINDOWS: cooling_cause::Windows = cooling_cause::Windows {
    before: Duration::from_secs(6),
    around: Duration::from_secs(3),
};

const STEPS: &[Step] = &[
    Step { at: 3.0, racks: &["R01", "R02", "R03"], celsius: 30.5, cooler: None, say: "zone Z1: blanking panels missing, hot exhaust recirculates into R01–R03 (overheat 1 of 3)" },
    Step { at: 8.0, racks: &["R01", "R02", "R03"], celsius: 22.5, cooler: None, say: "zone Z1: technician closes the containment door, inlets back to normal" },
    Step { at: 13.0, racks: &["R11"], celsius: 29.5, cooler: None, say: "zone Z2: one isolated spike on R11 (a server's fans ramp during a firmware update)" },
    Step { at: 17.0, racks: &["R11"], celsius: 22.0, cooler: None, say: "zone Z2: R11 back to normal" },
    Step { at: 19.0, racks: &["R01", "R02", "R03"], celsius: 31.0, cooler: None, say: "zone Z1: the door is propped open again, inlets rise (overheat 2 of 3)" },
    Step { at: 24.0, racks: &["R01", "R02", "R03"], celsius: 22.0, cooler: None, say: "zone Z1: inlets back to normal" },
    Step { at: 31.0, racks: &["R01", "R02", "R03"], celsius: 31.5, cooler: Some((24.0, 33.0)), say: "zone Z1: the InRow's compressor trips: its supply air climbs to 24 °C and every inlet follows, no cooling limit crossed (overheat 3 of 3)" },
    Step { at: 36.0, racks: &["R01", "R02", "R03"], celsius: 22.0, cooler: COOLER_NORMAL, say: "zone Z1: the compressor restarts, supply air and inlets back to normal" },
];

/// Longest the demo waits for the collector to settle after the last step.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(40);

/// Runs the whole demo; with `serve`, then keeps the site running with the dashboard up until
/// Ctrl-C.
pub async fn run(keep_state: bool, serve: bool) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("coldaisle-demo-")
        .tempdir()
        .context("creating the demo's state directory")?;
    let started = Instant::now();
    let say = |text: &str| println!("[{:>5.1}s] {text}", started.elapsed().as_secs_f64());

    let port = broker::free_port()?;
    broker::start(port)?;
    broker::wait_listening(port).await?;
    say(&format!("embedded MQTT broker on 127.0.0.1:{port}"));

    let site = Site::start().await?;
    say(&format!(
        "simulated site ams1: {} rack PDUs (SNMP v2c, APC rPDU2 probes) and an APC InRow cooler (Modbus TCP) on loopback",
        site.pdus.len()
    ));

    let collector_config =
        load_collector(&site::collector_config(&dir.path().join("collector"), port))?;
    let collector = RunningCollector::start(collector_config).await?;
    say(&format!(
        "collector started, API on http://{}",
        collector.http_addr
    ));

    let agent_config = load_agent(&site.agent_config(&dir.path().join("agent"), port))?;
    let agent = RunningAgent::start(agent_config)?;
    say("agent started: polling every 500 ms, threshold 27 °C (ASHRAE recommended), zone correlation ≥ 2 racks");

    for step in STEPS {
        let at = started + Duration::from_secs_f64(step.at);
        sleep_until_reporting(at, &collector, &started).await;
        for rack in step.racks {
            site.set_inlet(rack, step.celsius)?;
        }
        if let Some((supply, ret)) = step.cooler {
            site.set_cooler(supply, ret);
        }
        say(step.say);
    }

    say("waiting for the last incident to resolve and every event to be acknowledged...");
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let settled = {
            let state = collector.state.read().await;
            let now = Timestamp::now();
            let incidents = state.analysis.incidents(now);
            !incidents.is_empty()
                && incidents
                    .iter()
                    .all(|i| i.status == coldaisle_collector::incidents::IncidentStatus::Resolved)
        };
        if settled && agent.pending() == 0 {
            break;
        }
        if Instant::now() > deadline {
            anyhow::bail!("the collector did not settle within {SETTLE_TIMEOUT:?}");
        }
        sleep(Duration::from_millis(250)).await;
    }
    let agent = if serve {
        Some(agent)
    } else {
        agent.shutdown().await;
        None
    };

    let outcome = {
        let state = collector.state.read().await;
        let now = Timestamp::now();
        println!();
        let window = Duration::from_secs(3600);
        for zone in ["Z1", "Z2"] {
            let mut report = zone_report(&state, Some("ams1"), zone, now, window)
                .with_context(|| format!("building the report of zone {zone}"))?;
            // The rack figures, from the roll-ups of the window (a small demo store: read here).
            if let Some(rollups) = &state.rollups {
                report = coldaisle_collector::report::with_stored_figures(
                    report,
                    rollups,
                    (now.minus(window), now),
                    now,
                )
                .with_context(|| format!("reading the roll-ups of zone {zone}"))?;
            }
            println!("{}", render_zone_report(&report));
        }
        print_causes_from_readings(&state, now)?;
        let problems = state.analysis.problems();
        println!("Problem records: {}", problems.len());
        for problem in &problems {
            println!("{}", render_problem(problem));
        }
        problems
            .iter()
            .map(|p| p.fingerprint.zone.clone())
            .collect::<Vec<_>>()
    };
    // Act 2 (the problem's signature, cause and fix verification) runs after the live act.
    let told = if outcome == ["Z1"] {
        story::run().map(|()| {
            println!("done in {:.1}s: zone Z1's recurring overheating is one problem record; zone Z2's single spike is not.",
                started.elapsed().as_secs_f64());
        })
    } else {
        Err(anyhow::anyhow!(
            "expected exactly one problem, for zone Z1; got problems for {outcome:?}"
        ))
    };
    if let Some(agent) = agent {
        let served = serve_until_interrupted(&collector, &site).await;
        agent.shutdown().await;
        served?;
    }
    collector.shutdown().await;
    if keep_state {
        let kept = dir.keep();
        println!("state kept in {}", kept.display());
    }
    told
}

/// Each incident's probable cause once the zone's readings (the InRow's supply air, the rack
/// inlets) are read beside the raised events ([`cooling_cause`]): the recirculation overheats
/// read as airflow, the compressor trip as cooling capacity, R11's spike as that rack.
/// The summaries are the stored records themselves (2-second summaries: finer than the
/// one-minute roll-ups the collector's routes read; a small demo store, read whole).
fn print_causes_from_readings(
    state: &coldaisle_collector::state::CollectorState,
    now: Timestamp,
) -> anyhow::Result<()> {
    println!("Probable causes read from the cooling unit's and the inlets' readings:");
    let mut summaries = Vec::new();
    if let Some(rollups) = &state.rollups {
        coldaisle_collector::store::CollectorStore::new(rollups.kv().clone())
            .for_each_record(|r| {
                if let coldaisle_core::wire::Payload::ReadingSummary(s) = r.payload {
                    summaries.push(s);
                }
            })
            .context("reading the stored summaries")?;
    }
    for mut incident in state.analysis.incidents(now) {
        cooling_cause::refine_incident(
            &mut incident,
            summaries.iter(),
            state.analysis.events(),
            CAUSE_WINDOWS,
        );
        let Some(cause) = &incident.probable_cause else {
            continue;
        };
        println!(
            "  {} ({}, opened {}): {}",
            incident.id,
            incident.fingerprint,
            incident.opened_at.to_rfc3339(),
            cause.summary
        );
        for line in cause.evidence.iter().take(2) {
            println!("      {line}");
        }
    }
    println!();
    Ok(())
}

/// Prints the dashboard's URL and waits for Ctrl-C while the site, agent and collector keep
/// running (`site` is borrowed so its simulated devices live as long as this wait).
async fn serve_until_interrupted(collector: &RunningCollector, site: &Site) -> anyhow::Result<()> {
    // Listen before the URL is printed: whoever reads it may press Ctrl-C at once, and a SIGINT
    // that comes before the listener exists would kill the process instead of stopping it.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("listening for Ctrl-C")?;
    println!();
    println!(
        "dashboard: http://{}/ui/  (the simulated site keeps running: {} rack PDUs and an InRow cooler; Ctrl-C ends the demo)",
        collector.http_addr,
        site.pdus.len()
    );
    interrupt.recv().await.context("waiting for Ctrl-C")?;
    println!("Ctrl-C: stopping the agent and the collector");
    Ok(())
}

/// Sleeps until `at`, narrating incidents as the collector opens them.
async fn sleep_until_reporting(at: Instant, collector: &RunningCollector, started: &Instant) {
    while Instant::now() < at {
        sleep(Duration::from_millis(200)).await;
        report_new(collector, started).await;
    }
}

async fn report_new(collector: &RunningCollector, started: &Instant) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static SEEN_INCIDENTS: AtomicUsize = AtomicUsize::new(0);
    static SEEN_PROBLEMS: AtomicUsize = AtomicUsize::new(0);
    let state = collector.state.read().await;
    let incidents = state.analysis.incidents(Timestamp::now());
    let problems = state.analysis.problems();
    let stamp = started.elapsed().as_secs_f64();
    for incident in incidents
        .iter()
        .skip(SEEN_INCIDENTS.load(Ordering::Relaxed))
    {
        println!(
            "[{stamp:>5.1}s]   collector: incident {} opened ({}, {})",
            incident.id,
            incident.fingerprint,
            incident.severity.as_str()
        );
    }
    SEEN_INCIDENTS.fetch_max(incidents.len(), Ordering::Relaxed);
    for problem in problems.iter().skip(SEEN_PROBLEMS.load(Ordering::Relaxed)) {
        println!(
            "[{stamp:>5.1}s]   collector: PROBLEM {} opened: {}",
            problem.id, problem.reason
        );
    }
    SEEN_PROBLEMS.fetch_max(problems.len(), Ordering::Relaxed);
}

fn load_agent(text: &str) -> anyhow::Result<AgentConfig> {
    Ok(AgentConfig::from_str(text, Path::new("demo-agent.toml"))?)
}

fn load_collector(text: &str) -> anyhow::Result<CollectorConfig> {
    Ok(CollectorConfig::from_str(
        text,
        Path::new("demo-collector.toml"),
    )?)
}
