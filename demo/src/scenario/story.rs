//! The demo's second act, in compressed time: five weeks of zone Z1 of site ams1 replayed
//! through the collector's analysis by event time (the same pure engines the daemon runs, so
//! the result is what a collector holding these records would answer):
//!
//! 1. rack R03's PDU reports a power step 4.0 → 6.1 kW (a denser blade chassis);
//! 2. inlets of R01–R03 overheat on weekday afternoons, peaks creeping up: one problem, with
//!    its recurrence signature and a probable cause that cites the density change;
//! 3. an operator records the root cause and resolves the problem;
//! 4. fourteen days later the verification compares the zone before and after the fix.
//!
//! The events are the ones the agent's detectors send (threshold raises and clears on the rack
//! inlets, a `step_change` info event on rack power); the reading summaries are hourly.

use coldaisle_collector::actions::{ActionKind, OperatorAction, ProblemStatus};
use coldaisle_collector::analysis::{Analysis, StoredEvent};
use coldaisle_collector::fix_figures;
use coldaisle_collector::incidents::IncidentRules;
use coldaisle_collector::problems::{Problem, ProblemRules};
use coldaisle_collector::render::render_problem;
use coldaisle_core::wire::Payload;
use coldaisle_core::{
    Category, EventState, Location, ReadingSummary, SensorEvent, SensorKind, Severity, Timestamp,
};

/// Monday 2026-11-02 00:00 UTC, the replay's first day.
const MONDAY: i64 = 1_793_577_600_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const MINUTE: i64 = 60_000;
const RACKS: [&str; 3] = ["R01", "R02", "R03"];

/// The afternoon overheats: (day after [`MONDAY`], minute of the day, peak °C of R03).
const EPISODES: [(i64, i64, f64); 6] = [
    (15, 14 * 60 + 10, 28.4), // Tue 17 Nov
    (16, 14 * 60 + 40, 28.6), // Wed 18 Nov
    (17, 9 * 60 + 30, 28.5),  // Thu 19 Nov, a morning one
    (18, 15 * 60 + 5, 29.1),  // Fri 20 Nov
    (21, 14 * 60 + 25, 29.6), // Mon 23 Nov
    (22, 15 * 60 + 20, 30.2), // Tue 24 Nov
];

/// When the step of R03's power happened: Thu 12 Nov 10:00.
const STEP_AT: i64 = MONDAY + 10 * DAY + 10 * HOUR;
/// When the operator resolved the problem: Thu 26 Nov 11:00.
const FIXED_AT: i64 = MONDAY + 24 * DAY + 11 * HOUR;

/// Plays the story and prints each step and the final problem record.
pub fn run() -> anyhow::Result<()> {
    println!("\n=== Act 2, in compressed time: five weeks of zone Z1 replayed by event time ===");
    let mut analysis = Analysis::new(IncidentRules::default(), ProblemRules::default());
    let mut seq = 0;
    let mut next = || {
        seq += 1;
        seq
    };
    analysis.ingest(power_step(next()));
    say(STEP_AT, "rack R03's PDU: power 4.0 → 6.1 kW and holding (step_change, info): a denser chassis went in");
    let mut announced = 0;
    for (day, minute, peak) in EPISODES {
        let start = MONDAY + day * DAY + minute * MINUTE;
        for (k, rack) in RACKS.iter().enumerate() {
            let value = peak - 0.4 * (2 - k) as f64;
            analysis.ingest(inlet(
                next(),
                rack,
                EventState::Raised,
                value,
                start + k as i64 * MINUTE,
            ));
            analysis.ingest(inlet(
                next(),
                rack,
                EventState::Cleared,
                26.0,
                start + 40 * MINUTE,
            ));
        }
        say(start, &format!("inlets of R01–R03 above 27 °C (R03 peaks at {peak:.1} °C), back to normal 40 minutes later"));
        let problems = analysis.problems();
        if problems.len() > announced {
            for p in &problems[announced..] {
                say(
                    p.opened_at.millis(),
                    &format!("collector: PROBLEM {} opened: {}", p.id, p.reason),
                );
            }
            announced = problems.len();
        }
    }
    let id = analysis
        .problems()
        .first()
        .map(|p| p.id.clone())
        .ok_or_else(|| anyhow::anyhow!("the replay opened no problem"))?;
    for (n, kind) in [
        ActionKind::SetRootCause {
            problem: id.clone(),
            root_cause: "hot-aisle recirculation over R01–R03 (blanking panels missing), made worse by R03's new 6 kW chassis".into(),
            workaround: "keep the containment door closed during the afternoon batch window".into(),
        },
        ActionKind::SetProblemStatus {
            problem: id.clone(),
            status: ProblemStatus::Resolved,
        },
    ]
    .into_iter()
    .enumerate()
    {
        analysis
            .ingest_action(OperatorAction {
                id: n as u64 + 1,
                at: Timestamp(FIXED_AT + n as i64 * MINUTE),
                actor: "ops-anna".into(),
                kind,
            })
            .map_err(|e| anyhow::anyhow!("operator action on {id}: {e}"))?;
    }
    say(FIXED_AT, "operator ops-anna: root cause recorded, blanking panels fitted and R03's airflow rebalanced; problem resolved (verification window of 14 days opens)");
    let end = Timestamp(FIXED_AT + 14 * DAY + MINUTE);
    let mut problem: Problem = analysis
        .problem(&id)
        .ok_or_else(|| anyhow::anyhow!("problem {id} is gone"))?;
    fix_figures::attach(&mut problem, &summaries(), &analysis.incidents(end), end);
    say(end.millis(), "verification window over: zone Z1's figures before and after the fix written on the problem");
    println!();
    print!("{}", render_problem(&problem));
    if let Some(cause) = &problem.probable_cause {
        println!("  probable cause: {}", cause.summary);
        for line in cause.evidence.iter().take(4) {
            println!("    {line}");
        }
    }
    Ok(())
}

fn say(at: i64, text: &str) {
    let stamp = Timestamp(at).to_rfc3339();
    println!(
        "[{}] {text}",
        stamp.get(..16).unwrap_or(&stamp).replace('T', " ")
    );
}

fn location(rack: &str) -> Location {
    Location {
        site: "ams1".into(),
        zone: "Z1".into(),
        row: Some("A".into()),
        rack: Some(rack.into()),
    }
}

fn stored(seq: u64, event: SensorEvent) -> StoredEvent {
    StoredEvent {
        agent: "agent-ams1".into(),
        seq,
        payload: Payload::SensorEvent(event),
    }
}

fn inlet(seq: u64, rack: &str, state: EventState, value: f64, at: i64) -> StoredEvent {
    stored(
        seq,
        SensorEvent {
            sensor: format!("{rack}-inlet"),
            kind: SensorKind::InletTemp,
            location: location(rack),
            category: Category::Thermal,
            detector: "threshold".into(),
            state,
            severity: Severity::Warning,
            value,
            limit: Some(27.0),
            first_ts: Timestamp(at),
            ts: Timestamp(at),
            expected_crossing: None,
        },
    )
}

fn power_step(seq: u64) -> StoredEvent {
    stored(
        seq,
        SensorEvent {
            sensor: "R03-power".into(),
            kind: SensorKind::RackPower,
            location: location("R03"),
            category: Category::Power,
            detector: "step_change".into(),
            state: EventState::Raised,
            severity: Severity::Info,
            value: 6.1,
            limit: Some(4.0),
            first_ts: Timestamp(STEP_AT - 30 * MINUTE),
            ts: Timestamp(STEP_AT),
            expected_crossing: None,
        },
    )
}

/// Hourly inlet summaries of R01–R03 over the five weeks and the verification window: a
/// daily cycle, the afternoon overheats before the fix, a flatter zone after it.
fn summaries() -> Vec<ReadingSummary> {
    let mut out = Vec::new();
    let end = FIXED_AT + 15 * DAY;
    let mut hour = MONDAY;
    while hour < end {
        let of_day = (hour.rem_euclid(DAY) / HOUR) as f64;
        let fixed = hour >= FIXED_AT;
        let cycle = (of_day - 9.0) / 24.0 * std::f64::consts::TAU;
        let episode = EPISODES.iter().find(|(day, minute, _)| {
            let start = MONDAY + day * DAY + minute * MINUTE;
            hour + HOUR > start && hour < start + 40 * MINUTE
        });
        for (k, rack) in RACKS.iter().enumerate() {
            let max = match (episode, fixed) {
                (Some((_, _, peak)), _) => peak - 0.4 * (2 - k) as f64,
                (None, false) => 24.0 + 2.0 * cycle.sin() + 0.3 * k as f64,
                (None, true) => 23.0 + 0.8 * cycle.sin() + 0.2 * k as f64,
            };
            out.push(ReadingSummary {
                sensor: format!("{rack}-inlet"),
                kind: SensorKind::InletTemp,
                location: location(rack),
                from: Timestamp(hour),
                to: Timestamp(hour + HOUR),
                count: 120,
                min: max - 1.5,
                max,
                sum: 120.0 * (max - 0.8),
                last: max - 0.8,
            });
        }
        hour += HOUR;
    }
    out
}
