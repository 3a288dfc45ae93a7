//! Ingest under arbitrary batches: never a panic, work bounded by the batch, and no batch ever
//! changes another agent's records or ledger.

use super::*;
use crate::state::CollectorState;
use coldaisle_core::wire::SCHEMA_VERSION;
use coldaisle_core::{DeviceEvent, EventState, Location};
use coldaisle_store::MemoryStore;
use proptest::prelude::*;

const PREFIX: &str = "coldaisle/v1";

fn record(agent: &str, site: &str, zone: &str, seq: u64, instance: Option<&str>) -> Record {
    Record {
        schema: SCHEMA_VERSION,
        agent: agent.into(),
        site: site.into(),
        seq,
        payload: Payload::DeviceEvent(DeviceEvent {
            device: "d".into(),
            location: Location {
                site: site.into(),
                zone: zone.into(),
                row: None,
                rack: None,
            },
            state: EventState::Raised,
            reason: String::new(),
            ts: Timestamp(seq as i64),
        }),
        instance: instance.map(str::to_string),
    }
}

/// Seqs around the interesting edges: small, near the bound, near u64::MAX.
fn seq() -> impl Strategy<Value = u64> {
    prop_oneof![
        24 => 0u64..40,
        1 => Just(crate::store::MAX_SEQ),
        1 => (crate::store::MAX_SEQ - 3)..=(crate::store::MAX_SEQ + 3),
        1 => (u64::MAX - 3)..=u64::MAX,
        1 => any::<u64>(),
    ]
}

#[derive(Debug, Clone)]
struct ArbBatch {
    agent: &'static str,
    topic_site: &'static str,
    record_site: &'static str,
    zone: &'static str,
    floor: u64,
    seqs: Vec<u64>,
    dropped: Vec<(u64, u64)>,
    instance: Option<&'static str>,
    garbage: Option<Vec<u8>>,
}

fn arb_batch() -> impl Strategy<Value = ArbBatch> {
    (
        prop::sample::select(vec!["a1", "a2", "a\u{0}1", ""]),
        prop::sample::select(vec!["s1", "s2"]),
        prop::sample::select(vec!["s1", "s2"]),
        prop::sample::select(vec!["Z1", "Z2"]),
        seq(),
        prop::collection::btree_set(seq(), 0..12),
        prop::collection::vec((seq(), seq()), 0..4),
        prop::sample::select(vec![None, Some("i1"), Some("i2")]),
        prop::option::weighted(0.1, prop::collection::vec(any::<u8>(), 0..64)),
    )
        .prop_map(
            |(agent, topic_site, record_site, zone, floor, seqs, dropped, instance, garbage)| {
                ArbBatch {
                    agent,
                    topic_site,
                    record_site,
                    zone,
                    floor,
                    seqs: seqs.into_iter().collect(),
                    dropped,
                    instance,
                    garbage,
                }
            },
        )
}

impl ArbBatch {
    fn topic(&self) -> String {
        Topics::new(PREFIX).events(self.topic_site, self.agent)
    }

    fn payload(&self) -> Vec<u8> {
        if let Some(garbage) = &self.garbage {
            return garbage.clone();
        }
        let batch = Batch {
            schema: SCHEMA_VERSION,
            agent: self.agent.into(),
            site: self.topic_site.into(),
            floor: self.floor,
            records: self
                .seqs
                .iter()
                .map(|s| record(self.agent, self.topic_site, self.zone, *s, self.instance))
                .map(|mut r| {
                    // The record's location may name another site than its topic.
                    if let Payload::DeviceEvent(e) = &mut r.payload {
                        e.location.site = self.record_site.into();
                    }
                    r
                })
                .collect(),
            dropped: self
                .dropped
                .iter()
                .map(|(from, to)| SeqRange {
                    from: *from,
                    to: *to,
                })
                .collect(),
            instance: self.instance.map(str::to_string),
        };
        serde_json::to_vec(&batch).unwrap_or_default()
    }
}

/// Everything the store holds for `agent`: its records (key order) and its ledger.
fn snapshot(
    store: &CollectorStore,
    agent: &str,
) -> (Vec<Record>, Option<crate::store::AgentLedger>) {
    let mut records = Vec::new();
    store
        .for_each_record(|r| {
            if r.agent == agent {
                records.push(r)
            }
        })
        .expect("scan");
    (records, store.ledger(agent).expect("ledger"))
}

fn empty_state() -> CollectorState {
    let config = coldaisle_config::CollectorConfig::from_str(
        "collector_id = \"c\"\nstate_dir = \"/nonexistent\"\n[mqtt]\nhost = \"127.0.0.1\"\n",
        std::path::Path::new("collector.toml"),
    )
    .expect("config");
    crate::daemon::empty_state(&config)
}

fn gates() -> Vec<Gate> {
    let tofu = Gate {
        limits: IngestConfig {
            max_batch_records: 8,
            max_record_bytes: 4096,
            ..IngestConfig::default()
        },
        directory: AgentDirectory::default(),
    };
    let listed = Gate {
        directory: AgentDirectory::from_entries(vec![
            coldaisle_config::trust::AgentEntry {
                id: "a1".into(),
                site: "s1".into(),
                zones: vec!["Z1".into()],
            },
            coldaisle_config::trust::AgentEntry {
                id: "victim".into(),
                site: "s1".into(),
                zones: vec![],
            },
        ])
        .expect("list"),
        ..tofu.clone()
    };
    vec![tofu, listed]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn arbitrary_batches_are_bounded_and_confined_to_their_agent(
        batches in prop::collection::vec(arb_batch(), 1..12),
        listed in any::<bool>(),
    ) {
        let kv: Arc<dyn coldaisle_store::KvStore> = Arc::new(MemoryStore::new());
        let db = CollectorStore::new(kv.clone());
        let sites = SiteBook::new(kv);
        let gate = &gates()[usize::from(listed)];
        let topics = Topics::new(PREFIX);
        let mut state = empty_state();
        let victim: Vec<Record> = (1..=5).map(|s| record("victim", "s1", "Z1", s, Some("v"))).collect();
        let checked = CheckedBatch {
            agent: "victim".into(),
            site: "s1".into(),
            floor: 1,
            records: victim,
            dropped: vec![],
            instance: Some("v".into()),
        };
        store_batch_or_panic(&db, &sites, gate, checked);
        let before = snapshot(&db, "victim");
        let mut stored_total = 0u64;
        for batch in &batches {
            let topic = batch.topic();
            let outcome = check_batch(&topics, &gate.limits, &topic, &batch.payload())
                .and_then(|c| {
                    let records = c.records.len() as u64;
                    store(&db, &sites, gate, c, Timestamp(0)).map(|s| (records, s))
                });
            match outcome {
                Ok((records, stored)) => {
                    // Work: one ledger read, one lookup per record, one per stored record the
                    // ack moves over (each at most once), one to find the end.
                    stored_total += stored.new.len() as u64;
                    prop_assert!(
                        stored.lookups <= 2 + records + stored_total,
                        "{} lookups for {} records", stored.lookups, records
                    );
                    apply(&mut state, &batch.agent_id(), &stored, Timestamp(0));
                }
                Err(e) => reject(&mut state, &topic, &e, Timestamp(0)),
            }
            prop_assert_eq!(&snapshot(&db, "victim"), &before);
        }
    }
}

impl ArbBatch {
    fn agent_id(&self) -> String {
        self.agent.to_string()
    }
}

fn store_batch_or_panic(
    store: &CollectorStore,
    sites: &SiteBook,
    gate: &Gate,
    batch: CheckedBatch,
) {
    if let Err(e) = super::store(store, sites, gate, batch, Timestamp(0)) {
        panic!("victim's own batch refused: {e}");
    }
}

#[test]
fn refusals_are_counted_per_agent_and_reason() {
    let kv: Arc<dyn coldaisle_store::KvStore> = Arc::new(MemoryStore::new());
    let (store_, sites) = (CollectorStore::new(kv.clone()), SiteBook::new(kv));
    let gate = &gates()[1];
    let topics = Topics::new(PREFIX);
    let mut state = empty_state();
    let mut send = |agent: &str, site: &str, zone: &str, floor: u64| {
        let batch = Batch {
            schema: SCHEMA_VERSION,
            agent: agent.into(),
            site: site.into(),
            floor,
            records: vec![record(agent, site, zone, 1, None)],
            dropped: vec![],
            instance: None,
        };
        let topic = topics.events(site, agent);
        let payload = serde_json::to_vec(&batch).expect("encode");
        match check_batch(&topics, &gate.limits, &topic, &payload)
            .and_then(|c| store(&store_, &sites, gate, c, Timestamp(0)))
        {
            Ok(stored) => apply(&mut state, agent, &stored, Timestamp(0)),
            Err(e) => reject(&mut state, &topic, &e, Timestamp(0)),
        }
    };
    send("a1", "s1", "Z1", 1);
    send("a1", "s2", "Z1", 1);
    send("a1", "s1", "Z2", 1);
    send("a1", "s1", "Z1", u64::MAX);
    send("stranger", "s1", "Z1", 1);
    let a1 = &state.agents["a1"].trust.refusals.refused;
    assert_eq!(a1.get("wrong_site"), Some(&1));
    assert_eq!(a1.get("wrong_zone"), Some(&1));
    assert_eq!(a1.get("floor_beyond_produced"), Some(&1));
    assert_eq!(
        state.agents["stranger"]
            .trust
            .refusals
            .refused
            .get("unknown_agent"),
        Some(&1)
    );
    assert_eq!(state.agents["a1"].records, 1);
    assert_eq!(state.stats.refused.values().sum::<u64>(), 4);
    // The API shows them with the agent.
    let json = serde_json::to_value(&state.agents["a1"]).expect("json");
    assert_eq!(json["refused"]["wrong_zone"], 1);
    assert_eq!(json["last_refusal"]["reason"], "floor_beyond_produced");
}

#[test]
fn limits_name_their_key() {
    let topics = Topics::new(PREFIX);
    let limits = IngestConfig {
        max_batch_records: 2,
        max_record_bytes: 100,
        max_batch_bytes: 10_000,
        ..IngestConfig::default()
    };
    let batch = |n: u64| Batch {
        schema: SCHEMA_VERSION,
        agent: "a1".into(),
        site: "s1".into(),
        floor: 1,
        records: (1..=n).map(|s| record("a1", "s1", "Z1", s, None)).collect(),
        dropped: vec![],
        instance: None,
    };
    let topic = topics.events("s1", "a1");
    let reason = |payload: &[u8]| match check_batch(&topics, &limits, &topic, payload) {
        Err(IngestError::Refused { refusal, .. }) => refusal.to_string(),
        other => format!("{other:?}"),
    };
    let three = serde_json::to_vec(&batch(3)).expect("encode");
    assert!(reason(&three).contains("ingest.max_batch_records = 2"));
    let one = serde_json::to_vec(&batch(1)).expect("encode");
    assert!(reason(&one).contains("ingest.max_record_bytes = 100"));
    assert!(reason(&vec![b' '; 10_001]).contains("ingest.max_batch_bytes = 10000"));
}

#[test]
fn a_record_stamped_ahead_of_our_clock_never_moves_event_time() {
    let kv: Arc<dyn coldaisle_store::KvStore> = Arc::new(MemoryStore::new());
    let (db, sites) = (CollectorStore::new(kv.clone()), SiteBook::new(kv.clone()));
    let gate = Gate::default();
    let mut state = empty_state();
    let now = Timestamp(1_000_000_000);
    let hour = std::time::Duration::from_secs(3600);
    let mut future = record("a1", "s1", "Z1", 1, None);
    if let Payload::DeviceEvent(e) = &mut future.payload {
        e.ts = now.plus(hour);
    }
    let on_time = record("a1", "s1", "Z1", 2, None);
    let batch = CheckedBatch {
        agent: "a1".into(),
        site: "s1".into(),
        floor: 1,
        records: vec![future, on_time],
        dropped: vec![],
        instance: None,
    };
    let stored = store(&db, &sites, &gate, batch, now).expect("stored");
    apply(&mut state, "a1", &stored, now);
    let limit = now.plus(gate.limits.max_clock_skew);
    assert_eq!(stored.ahead, 1);
    assert_eq!(stored.clock_ahead_ms, Some(3_600_000));
    assert_eq!(
        state.latest_event, limit,
        "event time stops at our clock + max_clock_skew"
    );
    assert_eq!(state.stats.ahead_of_clock, 1);
    assert_eq!(state.agents["a1"].trust.records_ahead, 1);
    // Stored with the moved time (a rebuild sees the same), the agent's own time kept beside.
    let raw = kv.get("records", &{
        let mut k = b"a1\0".to_vec();
        k.extend_from_slice(&1u64.to_be_bytes());
        k
    });
    let json: serde_json::Value =
        serde_json::from_slice(&raw.expect("get").expect("stored")).expect("json");
    assert_eq!(json["agent_ts"], now.plus(hour).0);
    let mut rebuilt = Vec::new();
    db.for_each_record(|r| rebuilt.push(r.payload.ts()))
        .expect("scan");
    assert_eq!(rebuilt[0], limit);
}

#[test]
fn a_new_instance_s_events_reach_the_analysis() {
    let kv: Arc<dyn coldaisle_store::KvStore> = Arc::new(MemoryStore::new());
    let (db, sites) = (CollectorStore::new(kv.clone()), SiteBook::new(kv));
    let gate = Gate::default();
    let mut state = empty_state();
    for instance in ["i1", "i2"] {
        let batch = CheckedBatch {
            agent: "a1".into(),
            site: "s1".into(),
            floor: 1,
            records: vec![record("a1", "s1", "Z1", 1, Some(instance))],
            dropped: vec![],
            instance: Some(instance.into()),
        };
        let stored = store(&db, &sites, &gate, batch, Timestamp(0)).expect("stored");
        apply(&mut state, "a1", &stored, Timestamp(0));
        assert_eq!(
            stored.ledger.acked_upto, 1,
            "each instance is acked in its own seqs"
        );
    }
    assert_eq!(
        state.analysis.event_count(),
        2,
        "seq 1 of the new instance is a new event"
    );
    let a1 = &state.agents["a1"];
    assert_eq!((a1.records, a1.duplicates), (2, 0));
    assert_eq!(a1.trust.restarts, 1);
    assert_eq!(a1.trust.instance.as_deref(), Some("i2"));
    assert_eq!(a1.trust.restarted_at, Some(Timestamp(0)));
}

fn status_payload(agent: &str) -> Vec<u8> {
    serde_json::to_vec(&Status {
        state: "online".into(),
        agent: agent.into(),
        version: "t".into(),
        config_hash: "h".into(),
        ts: Timestamp(0),
        stats: Default::default(),
    })
    .expect("encode")
}

#[test]
fn a_status_is_checked_against_identity_like_a_batch() {
    let kv: Arc<dyn coldaisle_store::KvStore> = Arc::new(MemoryStore::new());
    let sites = SiteBook::new(kv);
    let topics = Topics::new(PREFIX);
    let [tofu, listed] = <[Gate; 2]>::try_from(gates()).expect("two gates");
    let check = |gate: &Gate, site: &str, agent: &str, named: &str| {
        check_status(
            &topics,
            &sites,
            gate,
            &topics.status(site, agent),
            &status_payload(named),
        )
    };
    let reason = |r: Result<CheckedStatus, IngestError>| match r {
        Err(IngestError::Refused { refusal, .. }) => refusal.reason(),
        other => panic!("expected a refusal, got {other:?}"),
    };
    // The list: its own site only; strangers and impersonation refused.
    assert!(check(&listed, "s1", "a1", "a1").is_ok());
    assert_eq!(reason(check(&listed, "s2", "a1", "a1")), "wrong_site");
    assert_eq!(
        reason(check(&listed, "s1", "stranger", "stranger")),
        "unknown_agent"
    );
    assert_eq!(
        reason(check(&listed, "s1", "a1", "victim")),
        "other_agents_status"
    );
    // Trust on first use: a status alone records nothing, so any site passes until a batch
    // has recorded one; then only that site.
    assert!(check(&tofu, "s9", "a2", "a2").is_ok());
    assert_eq!(sites.get("a2").expect("read"), None);
    sites
        .record(
            "a2",
            &FirstSeen {
                site: "s1".into(),
                at: Timestamp(0),
            },
        )
        .expect("record");
    assert!(check(&tofu, "s1", "a2", "a2").is_ok());
    assert_eq!(reason(check(&tofu, "s9", "a2", "a2")), "wrong_site");
}

#[test]
fn a_refused_status_changes_nothing_and_is_counted() {
    let kv: Arc<dyn coldaisle_store::KvStore> = Arc::new(MemoryStore::new());
    let sites = SiteBook::new(kv);
    let topics = Topics::new(PREFIX);
    let gate = &gates()[1];
    let mut state = empty_state();
    let topic = topics.status("s2", "a1");
    match check_status(&topics, &sites, gate, &topic, &status_payload("a1")) {
        Ok(checked) => panic!("a status on another site was accepted: {checked:?}"),
        Err(e) => reject(&mut state, &topic, &e, Timestamp(0)),
    }
    let a1 = &state.agents["a1"];
    assert!(a1.status.is_none());
    assert_eq!(a1.trust.refusals.refused.get("wrong_site"), Some(&1));
    let topic = topics.status("s1", "a1");
    let checked =
        check_status(&topics, &sites, gate, &topic, &status_payload("a1")).expect("own site");
    apply_status(&mut state, checked, Timestamp(5));
    assert_eq!(state.agents["a1"].status_at, Some(Timestamp(5)));
    assert_eq!(state.agents["a1"].site, "s1");
}
