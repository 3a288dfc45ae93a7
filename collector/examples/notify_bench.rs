//! Notifier cost at scale: builds `N` incidents (default 10 000) across 10 sites × 20 zones,
//! `OPEN` of them still open, then times the pure planner (`notify_plan::plan`) on them with one
//! route for everything, first with an empty ledger (everything open is new) then with the
//! ledger it produced (the steady state, every second tick of a running collector).
//!
//! `cargo run --release -q -p coldaisle-collector --example notify_bench -- 10000 500`

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use coldaisle_collector::analysis::{Analysis, StoredEvent};
use coldaisle_collector::incidents::IncidentRules;
use coldaisle_collector::notify_plan::{plan, NoiseRules, Route};
use coldaisle_collector::problems::ProblemRules;
use coldaisle_core::wire::Payload;
use coldaisle_core::{
    Category, EventState, Location, SensorEvent, SensorKind, Severity, Timestamp,
};
use std::time::{Duration, Instant};

const T0: i64 = 1_764_072_000_000;
const MIN: i64 = 60_000;

fn event(seq: u64, site: usize, zone: usize, state: EventState, ts: i64) -> StoredEvent {
    StoredEvent {
        agent: format!("a{site}"),
        seq,
        payload: Payload::SensorEvent(SensorEvent {
            sensor: format!("s{site}-{zone}"),
            kind: SensorKind::InletTemp,
            location: Location {
                site: format!("dc{site}"),
                zone: format!("Z{zone}"),
                row: None,
                rack: Some("r1".into()),
            },
            category: Category::Thermal,
            detector: "threshold".into(),
            state,
            severity: Severity::Warning,
            value: 28.0,
            limit: Some(27.0),
            first_ts: Timestamp(ts),
            ts: Timestamp(ts),
            expected_crossing: None,
        }),
    }
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let n = args.first().copied().unwrap_or(10_000);
    let open = args.get(1).copied().unwrap_or(500);
    let mut a = Analysis::new(IncidentRules::default(), ProblemRules::default());
    let started = Instant::now();
    let mut seq = 0u64;
    // Incident k: zone k % 200, one hour apart per zone; the last `open` stay raised.
    for k in 0..n {
        let (site, zone) = ((k % 200) / 20, k % 20);
        let ts = T0 + (k as i64) * 10 * MIN;
        seq += 1;
        a.ingest(event(seq, site, zone, EventState::Raised, ts));
        if k + open < n {
            seq += 1;
            a.ingest(event(seq, site, zone, EventState::Cleared, ts + 2 * MIN));
        }
    }
    let now = Timestamp(T0 + (n as i64) * 10 * MIN);
    let ingest = started.elapsed();
    let t = Instant::now();
    let incidents = a.incidents(now);
    let problems = a.problems();
    let snapshot = t.elapsed();
    let routes = [Route {
        receiver: "am".into(),
        sites: vec![],
        zones: vec![],
        categories: vec![],
        min_severity: Severity::Info,
        incidents: true,
        problems: true,
    }];
    let rules = NoiseRules {
        repeat_interval: Duration::from_secs(240),
        flap_threshold: 4,
        flap_window: Duration::from_secs(3600),
        site_outage_zones: 3,
    };
    let t = Instant::now();
    let first = plan(
        &incidents,
        &problems,
        &routes,
        &[],
        &rules,
        &Default::default(),
        now,
    );
    let first_time = t.elapsed();
    let ledger = first.sent.clone();
    let rounds = 5;
    let t = Instant::now();
    let mut steady = 0;
    for _ in 0..rounds {
        steady = plan(&incidents, &problems, &routes, &[], &rules, &ledger, now)
            .jobs
            .len();
    }
    let steady_time = t.elapsed() / rounds;
    println!(
        "incidents={} open={} problems={} ingest={:?} snapshot(incidents+problems)={:?} \
         plan_first={:?} (notifications={}) plan_steady={:?} (jobs={steady})",
        incidents.len(),
        open,
        problems.len(),
        ingest,
        snapshot,
        first_time,
        first.jobs.values().map(Vec::len).sum::<usize>(),
        steady_time,
    );
}
