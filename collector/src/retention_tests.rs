//! Raw-record retention: the cut-off rule (what the analysis still needs holds it back) and a
//! compaction pass on sled (old records and their index entries gone, recent and needed ones
//! kept, a resend of a deleted record still a duplicate, restart from the checkpoint).

use super::*;
use crate::actions::{ActionKind, OperatorAction, ProblemStatus};
use crate::analysis::Analysis;
use crate::incidents::tests::{sensor, MIN, T0};
use crate::incidents::IncidentRules;
use crate::model::StoredEvent;
use crate::problems::ProblemRules;
use coldaisle_core::wire::{Payload, Record, SCHEMA_VERSION};
use coldaisle_core::EventState::{Cleared, Raised};
use coldaisle_core::Severity::Warning;
use coldaisle_core::{Location, ReadingSummary, SensorKind};
use coldaisle_store::SledStore;

const DAY: i64 = 86_400_000;
const KEEP: Duration = Duration::from_secs(45 * 86_400);

/// An overheat in zone Z1 on day `day` (raise at +1 h, clear 5 minutes later).
fn overheat(agent: &str, seq: u64, day: i64) -> [StoredEvent; 2] {
    let at = T0 + day * DAY + 60 * MIN;
    [
        sensor(agent, seq, "Z1", "r1-inlet", Raised, Warning, 29.0, at),
        sensor(
            agent,
            seq + 1,
            "Z1",
            "r1-inlet",
            Cleared,
            Warning,
            26.0,
            at + 5 * MIN,
        ),
    ]
}

/// A clear that matches nothing: moves the analysis's event time, opens nothing.
fn tick(agent: &str, seq: u64, at: i64) -> StoredEvent {
    sensor(agent, seq, "Z2", "idle", Cleared, Warning, 20.0, at)
}

/// Three overheats in 30 days (days 0, 8, 20): a recurring problem in Z1; then nothing until
/// `until` (event time).
fn recurring_then_quiet(until: i64) -> Analysis {
    let mut a = Analysis::new(IncidentRules::default(), ProblemRules::default());
    for (k, day) in [0, 8, 20].into_iter().enumerate() {
        for e in overheat("a1", 2 * k as u64 + 1, day) {
            a.ingest(e);
        }
    }
    a.ingest(tick("a1", 7, until));
    a
}

#[test]
fn the_cutoff_is_the_age_limit_unless_something_older_is_needed() {
    let now = Timestamp(T0 + 100 * DAY);
    let by_age = Timestamp(T0 + 55 * DAY);
    assert_eq!(record_cutoff(now, KEEP, None), by_age);
    assert_eq!(
        record_cutoff(now, KEEP, Some(Timestamp(T0 + 70 * DAY))),
        by_age
    );
    assert_eq!(record_cutoff(now, KEEP, Some(Timestamp(T0))), Timestamp(T0));
}

#[test]
fn an_open_problem_holds_its_incidents_records_back_until_verified() {
    let first_raise = Timestamp(T0 + 60 * MIN);
    let mut a = recurring_then_quiet(T0 + 100 * DAY);
    // Every incident has resolved, but the problem they opened is open: its oldest incident
    // opened at day 0, 55 days before the age limit.
    let problems = a.problems();
    assert_eq!(problems.len(), 1);
    assert!(problems[0].status.is_open());
    assert_eq!(a.oldest_needed_time(), Some(first_raise));
    let cutoff = record_cutoff(Timestamp(T0 + 100 * DAY), KEEP, a.oldest_needed_time());
    assert_eq!(cutoff, first_raise);
    // Resolved: still needed while its fix is under verification (14 days by default).
    let resolve = OperatorAction {
        id: 1,
        at: Timestamp(T0 + 100 * DAY + MIN),
        actor: "op".into(),
        kind: ActionKind::SetProblemStatus {
            problem: problems[0].id.clone(),
            status: ProblemStatus::Resolved,
        },
    };
    assert!(a.ingest_action(resolve).expect("resolve"));
    a.ingest(tick("a1", 8, T0 + 101 * DAY));
    assert_eq!(a.oldest_needed_time(), Some(first_raise));
    // Verification over: nothing is needed any more, the age limit alone counts.
    a.ingest(tick("a1", 9, T0 + 120 * DAY));
    assert_eq!(a.oldest_needed_time(), None);
}

#[test]
fn an_open_incident_is_needed_from_its_opening_a_resolved_one_is_not() {
    let mut a = Analysis::new(IncidentRules::default(), ProblemRules::default());
    assert_eq!(a.oldest_needed_time(), None);
    let [raise, clear] = overheat("a1", 1, 0);
    a.ingest(raise);
    assert_eq!(a.oldest_needed_time(), Some(Timestamp(T0 + 60 * MIN)));
    a.ingest(clear);
    // Cleared, but the quiet period (15 minutes) has not passed at the latest event time.
    assert_eq!(a.oldest_needed_time(), Some(Timestamp(T0 + 60 * MIN)));
    a.ingest(tick("a1", 3, T0 + DAY));
    assert_eq!(a.oldest_needed_time(), None);
}

/// A record of `agent` with `seq` and `payload`.
fn record(agent: &str, seq: u64, payload: Payload) -> Record {
    Record {
        schema: SCHEMA_VERSION,
        agent: agent.into(),
        site: "dc1".into(),
        seq,
        payload,
        instance: None,
    }
}

/// A one-minute inlet summary ending at `at`.
fn summary(at: i64) -> Payload {
    Payload::ReadingSummary(ReadingSummary {
        sensor: "r1-inlet".into(),
        kind: SensorKind::InletTemp,
        location: Location {
            site: "dc1".into(),
            zone: "Z1".into(),
            row: None,
            rack: Some("R1".into()),
        },
        from: Timestamp(at - MIN),
        to: Timestamp(at),
        count: 6,
        min: 22.0,
        max: 23.0,
        sum: 135.0,
        last: 22.5,
    })
}

/// Agent a1's history, in event-time order with seqs 1, 2, …: a summary every day from day
/// −30 to day 99, the three overheats of [`recurring_then_quiet`], a tick on day 99.
fn a1_history() -> Vec<Record> {
    let mut payloads: Vec<Payload> = (-30..100).map(|d| summary(T0 + d * DAY)).collect();
    for day in [0, 8, 20] {
        payloads.extend(overheat("a1", 0, day).map(|e| e.payload));
    }
    payloads.push(tick("a1", 0, T0 + 99 * DAY + 120 * MIN).payload);
    payloads.sort_by_key(Payload::ts);
    payloads
        .into_iter()
        .enumerate()
        .map(|(i, p)| record("a1", i as u64 + 1, p))
        .collect()
}

fn config() -> coldaisle_config::CollectorConfig {
    let text = "collector_id = \"c1\"\nstate_dir = \"/tmp/unused\"\n[mqtt]\nhost = \"127.0.0.1\"\n";
    coldaisle_config::CollectorConfig::from_str(text, std::path::Path::new("collector.toml"))
        .expect("config")
}

fn load(store: &CollectorStore) -> (crate::state::CollectorState, crate::checkpoint::Loaded) {
    let mut state = crate::daemon::empty_state(&config());
    let loaded = crate::checkpoint::load_state(&mut state, store, Vec::new()).expect("load");
    (state, loaded)
}

/// `(agent, seq, ts)` of every stored record, and the number of index entries.
fn contents(kv: &dyn KvStore, store: &CollectorStore) -> (Vec<(String, u64, Timestamp)>, usize) {
    let mut all = Vec::new();
    store
        .for_each_record(|r| all.push((r.agent.clone(), r.seq, r.payload.ts())))
        .expect("scan");
    (all, kv.len("record_positions").expect("len"))
}

#[test]
fn compaction_on_sled_deletes_old_records_and_keeps_recent_needed_and_unacked_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    retention_story(&|| Arc::new(SledStore::open(dir.path()).expect("open sled")));
}

#[test]
fn compaction_on_postgres_deletes_old_records_and_keeps_recent_needed_and_unacked_ones() {
    use coldaisle_store_pg::{PgOptions, PgStore};
    use coldaisle_testkit::postgres::Postgres;
    let pg = Postgres::start().expect("postgres");
    pg.create_database("retention").expect("database");
    let options = PgOptions {
        url: pg.url("retention"),
        password: Some(Postgres::PASSWORD.into()),
        ca_file: None,
    };
    retention_story(&|| Arc::new(PgStore::open(options.clone()).expect("open postgres")));
}

/// The story of both backends: `open` opens the same store again (after the previous handle
/// is dropped).
fn retention_story(open: &dyn Fn() -> Arc<dyn KvStore>) {
    let kv = open();
    let store = CollectorStore::new(kv.clone());
    // a2 first (lower positions): seqs 1, 2 and 4 of days −20..−18; 3 never arrived, so its
    // ack stays at 2 and seq 4 must be kept.
    let a2: Vec<Record> = [(1, -20), (2, -19), (4, -18)]
        .into_iter()
        .map(|(seq, d)| record("a2", seq, summary(T0 + d * DAY)))
        .collect();
    let s = store.store_batch("a2", "dc1", 1, &[], a2).expect("a2");
    assert_eq!(s.ledger.acked_upto, 2);
    let history = a1_history();
    let total_a1 = history.len();
    for chunk in history.chunks(8) {
        store
            .store_batch("a1", "dc1", 1, &[], chunk.to_vec())
            .expect("a1");
    }
    // A late arrival: a3's only record is 60 days old but stored last.
    store
        .store_batch(
            "a3",
            "dc1",
            1,
            &[],
            vec![record("a3", 1, summary(T0 - 60 * DAY))],
        )
        .expect("a3");

    let (state, _) = load(&store);
    let needed = state.analysis.oldest_needed_time();
    let first_raise = Timestamp(T0 + 60 * MIN);
    assert_eq!(needed, Some(first_raise), "the open Z1 problem needs day 0");
    let problems_before = serde_json::to_string(&state.analysis.problems()).expect("encode");
    let body = crate::checkpoint::encode(&state).expect("encode");
    crate::checkpoint::write(kv.as_ref(), store.position().expect("position"), &body)
        .expect("checkpoint");

    let cutoff = record_cutoff(Timestamp(T0 + 100 * DAY), KEEP, needed);
    assert_eq!(cutoff, first_raise);
    let deleted = store
        .delete_records_before(cutoff, &|| false)
        .expect("delete");
    // a2's seqs 1 and 2, a1's summaries of days −30..=0; a2's seq 4 held.
    assert_eq!(
        deleted,
        Deleted {
            records: 2 + 31,
            dangling: 0,
            held: 1,
            scanned: 2 + 1 + 31 + 1,
        }
    );
    let (left, index_entries) = contents(kv.as_ref(), &store);
    assert_eq!(
        index_entries,
        left.len(),
        "every index entry of a deleted record is gone"
    );
    assert_eq!(left.len(), 3 + total_a1 + 1 - 33);
    let old: Vec<_> = left.iter().filter(|(_, _, ts)| *ts < cutoff).collect();
    assert_eq!(
        old,
        vec![
            &("a2".to_string(), 4, Timestamp(T0 - 18 * DAY)),
            &("a3".to_string(), 1, Timestamp(T0 - 60 * DAY)),
        ],
        "only the unacked record and the late arrival behind newer ones stay"
    );
    assert!(
        left.iter()
            .any(|(a, _, ts)| a == "a1" && *ts == first_raise),
        "the open problem's records are kept"
    );
    // A second pass has nothing more to delete.
    let again = store
        .delete_records_before(cutoff, &|| false)
        .expect("again");
    assert_eq!((again.records, again.held), (0, 1));

    // The agent resends its deleted seq 1: a duplicate, not a new record.
    let resend = store
        .store_batch("a1", "dc1", 1, &[], vec![a1_history()[0].clone()])
        .expect("resend");
    assert_eq!((resend.new.len(), resend.duplicates), (0, 1));
    assert_eq!(resend.ledger.acked_upto, total_a1 as u64);
    // Seq 3 of a2 arrives at last: stored, and the ack moves over the held seq 4.
    let late = store
        .store_batch(
            "a2",
            "dc1",
            1,
            &[],
            vec![record("a2", 3, summary(T0 - 19 * DAY))],
        )
        .expect("a2 seq 3");
    assert_eq!((late.new.len(), late.ledger.acked_upto), (1, 4));

    // Restart: the checkpoint is used, and a full rebuild from what is left finds the same
    // open problem (its records were kept).
    drop((store, kv));
    let kv = open();
    let store = CollectorStore::new(kv.clone());
    let (state, loaded) = load(&store);
    assert!(loaded.checkpoint > 0, "started from the checkpoint");
    assert_eq!(loaded.replayed, 1, "the tail: a2's seq 3");
    assert_eq!(
        serde_json::to_string(&state.analysis.problems()).expect("encode"),
        problems_before
    );
    let mut rebuilt = crate::daemon::empty_state(&config());
    crate::checkpoint::rebuild_state(&mut rebuilt, &store, Vec::new()).expect("rebuild");
    assert_eq!(
        serde_json::to_string(&rebuilt.analysis.problems()).expect("encode"),
        problems_before
    );
    // New records continue after the last position.
    let next = store
        .store_batch(
            "a3",
            "dc1",
            1,
            &[],
            vec![record("a3", 2, summary(T0 + 100 * DAY))],
        )
        .expect("a3 seq 2");
    assert!(next.position > Some(loaded.position));
    drop(kv);
}

#[test]
fn the_last_index_entry_is_never_deleted_so_positions_never_go_back() {
    let kv: Arc<dyn KvStore> = Arc::new(coldaisle_store::MemoryStore::new());
    let store = CollectorStore::new(kv.clone());
    let old: Vec<Record> = (1..=3)
        .map(|seq| record("a1", seq, summary(T0 + seq as i64 * MIN)))
        .collect();
    store.store_batch("a1", "dc1", 1, &[], old).expect("store");
    let deleted = store
        .delete_records_before(Timestamp(T0 + DAY), &|| false)
        .expect("delete");
    assert_eq!(deleted.records, 2);
    assert_eq!(store.position().expect("position"), 3);
    let s = store
        .store_batch(
            "a1",
            "dc1",
            1,
            &[],
            vec![record("a1", 4, summary(T0 + DAY))],
        )
        .expect("store");
    assert_eq!(s.position, Some(4));
    // A reopened handle reads the same last position.
    assert_eq!(CollectorStore::new(kv).position().expect("position"), 4);
}
