//! A clustered collector's view kept up to date from the database by reading only what was
//! written since its last refresh: the records, operator actions and agent ledgers whose
//! ingest id is past its cursor ([`coldaisle_store_pg::TailCursor`]), fed to the analysis
//! through its ingest path ([`crate::ingest::apply_record`], `Analysis::ingest_actions`),
//! and the silences another collector added, taken into the notifier's book
//! ([`crate::notifier::SilenceBook::merge`]).
//!
//! Invariants:
//! - **Each change is applied once.** The cursor moves only past pages applied to the state.
//!   Right after a full rebuild, the records with ids between the settled id read before it
//!   and the one read after it (`overlap_until`) may be in the rebuilt view already: events
//!   are dropped by the analysis's own `(agent, seq)` check; a summary is held when the fleet
//!   directory saw its sensor until its end or later ([`held`]: one agent sends a sensor's
//!   summaries in time order, and they are stored in that order). A summary only notes its
//!   sensor in the directory (its figures are the roll-ups the ingesting partition wrote),
//!   which is idempotent, so this check only keeps the record counts exact.
//! - **An active partition skips its own sites' records and ledgers**: its ingest applied
//!   them when it stored them. A standby applies everything.
//! - Deleted rows (raw-record retention) are not changes: they leave the view at the next
//!   full rebuild. A full rebuild reads the silence book again whole.
//!
//! Decoding and applying are pure ([`decode`], [`apply`]); [`Follower`] does the reads.

use crate::actions::OperatorAction;
use crate::notify_plan::Silence;
use crate::state::CollectorState;
use crate::store::AgentLedger;
use coldaisle_core::wire::{Payload, Record};
use coldaisle_store::StoreError;
use coldaisle_store_pg::{Change, ChangesPage, PgStore, TailCursor, TailStep, RECORDS};
use std::sync::Arc;

/// The trees a refresh follows.
pub const TREES: [&str; 4] = [
    RECORDS,
    crate::action_log::ACTIONS,
    crate::store::AGENTS,
    crate::notifier::SILENCES,
];

/// Changes read per page (one write-lock hold per page).
pub const PAGE: usize = 5_000;

/// One page of changes, decoded.
#[derive(Debug, Default)]
pub struct Delta {
    /// New records with their ingest ids.
    pub records: Vec<(u64, Record)>,
    /// New operator actions.
    pub actions: Vec<OperatorAction>,
    /// Changed agent ledgers.
    pub ledgers: Vec<(String, AgentLedger)>,
    /// New or changed silences (for the notifier's book, not the state).
    pub silences: Vec<Silence>,
    /// Changes that did not decode (logged, skipped).
    pub undecodable: u64,
}

/// Sorts changes by tree and decodes them.
pub fn decode(changes: Vec<Change>) -> Delta {
    let mut delta = Delta::default();
    for change in changes {
        let decoded = match change.tree.as_str() {
            RECORDS => serde_json::from_slice(&change.value)
                .map(|r| delta.records.push((change.id, r)))
                .map_err(|e| e.to_string()),
            crate::action_log::ACTIONS => serde_json::from_slice(&change.value)
                .map(|a| delta.actions.push(a))
                .map_err(|e| e.to_string()),
            crate::store::AGENTS => match String::from_utf8(change.key.clone()) {
                Ok(agent) => serde_json::from_slice(&change.value)
                    .map(|l| delta.ledgers.push((agent, l)))
                    .map_err(|e| e.to_string()),
                Err(_) => Err("agent id is not UTF-8".to_string()),
            },
            crate::notifier::SILENCES => serde_json::from_slice(&change.value)
                .map(|s| delta.silences.push(s))
                .map_err(|e| e.to_string()),
            other => Err(format!("tree {other} is not followed")),
        };
        if let Err(error) = decoded {
            delta.undecodable += 1;
            tracing::error!(tree = %change.tree, ingest_id = change.id, %error, "stored change does not decode; skipped");
        }
    }
    delta
}

/// What applying a page did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Records added to the view.
    pub records: u64,
    /// Records left out: the view held them already, or this partition's ingest applied them.
    pub skipped: u64,
    /// Operator actions read (the analysis drops those it holds).
    pub actions: usize,
    /// Agent ledgers updated.
    pub ledgers: usize,
}

/// True if the view holds `s` already: the directory saw its sensor until its end or later.
fn held(state: &CollectorState, s: &coldaisle_core::ReadingSummary) -> bool {
    let loc = &s.location;
    state
        .directory
        .sensor(&loc.site, &loc.zone, loc.rack.as_deref(), &s.sensor)
        .is_some_and(|seen| seen.last_seen >= s.to)
}

impl Delta {
    /// The changes it holds (decoded or not).
    pub fn len(&self) -> u64 {
        (self.records.len() + self.actions.len() + self.ledgers.len() + self.silences.len()) as u64
            + self.undecodable
    }

    /// True if it holds no change.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Applies `delta` to `state` (its silences are the caller's: see [`Delta::silences`]).
/// `own_sites`: the sites whose records and ledgers this
/// collector's ingest applies itself (an active partition), left out. Records with ingest
/// ids up to `overlap_until` may be in the view already (see the module doc).
pub fn apply(
    state: &mut CollectorState,
    delta: Delta,
    own_sites: Option<&[String]>,
    overlap_until: u64,
) -> Applied {
    let owned = |site: &str| own_sites.is_some_and(|sites| super::owns(sites, site));
    let mut applied = Applied {
        actions: delta.actions.len(),
        ..Applied::default()
    };
    state.analysis.begin_bulk();
    for (id, record) in delta.records {
        if owned(&record.site) {
            applied.skipped += 1;
            continue;
        }
        let agent = record.agent.clone();
        let new = match &record.payload {
            Payload::ReadingSummary(summary) => {
                let fresh = id > overlap_until || !held(state, summary);
                if fresh {
                    crate::ingest::apply_record(state, record);
                }
                fresh
            }
            _ => {
                // The analysis drops an event it holds: its count says whether it took it.
                let before = state.analysis.event_count();
                crate::ingest::apply_record(state, record);
                state.analysis.event_count() > before
            }
        };
        if new {
            applied.records += 1;
            state.agents.entry(agent).or_default().records += 1;
        } else {
            applied.skipped += 1;
        }
    }
    state.analysis.ingest_actions(delta.actions);
    state.analysis.end_bulk();
    for (agent, ledger) in delta.ledgers {
        if owned(&ledger.site) {
            continue;
        }
        applied.ledgers += 1;
        restore_ledger(state.agents.entry(agent).or_default(), &ledger);
    }
    applied
}

/// Takes what an agent's ledger says (site, acks, drops, incarnation) into its API view: at
/// a rebuild (`daemon::load_state`) and when a refresh reads a changed ledger.
pub fn restore_ledger(info: &mut crate::state::AgentInfo, ledger: &AgentLedger) {
    info.site = ledger.site.clone();
    info.acked_upto = ledger.acked_upto;
    info.highest_seen = ledger.highest_seen;
    info.dropped_by_agent = ledger.dropped_by_agent;
    info.trust.restore(ledger);
}

/// The refresh's connection and cursor (one per clustered collector).
#[derive(Debug)]
pub struct Follower {
    /// A connection of its own: refresh reads do not queue behind ingest's writes.
    store: Arc<PgStore>,
    /// Where the view stands.
    cursor: TailCursor,
    /// After a full rebuild: the settled id read once it was done (see the module doc).
    overlap_until: u64,
}

impl Follower {
    /// Connects (blocking).
    pub fn open(options: coldaisle_store_pg::PgOptions) -> Result<Follower, StoreError> {
        Ok(Follower {
            store: Arc::new(PgStore::open(options)?),
            cursor: TailCursor::new(),
            overlap_until: 0,
        })
    }

    /// The store, for reads on a blocking thread.
    pub fn store(&self) -> Arc<PgStore> {
        self.store.clone()
    }

    /// The next step given the database's settled id.
    pub fn plan(&self, settled: u64) -> TailStep {
        self.cursor.plan(settled)
    }

    /// A full rebuild that started once `before` was settled, and ended once `after` was.
    pub fn rebuilt(&mut self, before: u64, after: u64) {
        self.cursor.rebuilt(before);
        self.overlap_until = after.max(before);
    }

    /// The id up to which records may be in the view already.
    pub fn overlap_until(&self) -> u64 {
        self.overlap_until
    }

    /// A page was applied.
    pub fn advance(&mut self, page: &ChangesPage) {
        self.cursor.advance(page);
    }

    /// The next refresh is a full rebuild (the settled id could not be read after one).
    pub fn reset(&mut self) {
        self.cursor.reset();
    }
}

/// Reads and decodes one page (blocking).
pub fn read_page(
    store: &PgStore,
    after: u64,
    upto: u64,
) -> Result<(ChangesPage, Delta), StoreError> {
    let mut page = store.changes(after, upto, &TREES, PAGE)?;
    let delta = decode(std::mem::take(&mut page.changes));
    Ok((page, delta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::ActionKind;
    use crate::incidents::tests::{sensor, MIN, T0};
    use crate::incidents::IncidentRules;
    use crate::problems::ProblemRules;
    use coldaisle_core::wire::SCHEMA_VERSION;
    use coldaisle_core::EventState::Raised;
    use coldaisle_core::Severity::Warning;
    use coldaisle_core::{Location, ReadingSummary, SensorKind, Timestamp};

    fn empty() -> CollectorState {
        CollectorState {
            analysis: crate::analysis::Analysis::new(
                IncidentRules::default(),
                ProblemRules::default(),
            ),
            directory: Default::default(),
            rollups: None,
            agents: Default::default(),
            stats: Default::default(),
            latest_event: Timestamp(0),
            notify: Default::default(),
            history: None,
        }
    }

    fn event(agent: &str, site: &str, seq: u64) -> Record {
        sensor(
            agent,
            seq,
            "Z1",
            "r1-inlet",
            Raised,
            Warning,
            29.0,
            T0 + seq as i64 * MIN,
        )
        .into_record(site)
    }

    fn summary(agent: &str, site: &str, seq: u64) -> Record {
        let from = Timestamp(T0 + seq as i64 * MIN);
        Record {
            schema: SCHEMA_VERSION,
            agent: agent.into(),
            site: site.into(),
            seq,
            payload: Payload::ReadingSummary(ReadingSummary {
                sensor: "r1-inlet".into(),
                kind: SensorKind::InletTemp,
                location: Location {
                    site: site.into(),
                    zone: "Z1".into(),
                    row: None,
                    rack: None,
                },
                from,
                to: Timestamp(from.0 + MIN),
                count: 6,
                min: 22.0,
                max: 23.0,
                sum: 135.0,
                last: 22.5,
            }),
            instance: None,
        }
    }

    fn change(id: u64, tree: &str, key: &[u8], value: Vec<u8>) -> Change {
        Change {
            id,
            tree: tree.into(),
            key: key.to_vec(),
            value,
        }
    }

    fn json(v: &impl serde::Serialize) -> Vec<u8> {
        serde_json::to_vec(v).expect("encode")
    }

    fn delta(records: Vec<(u64, Record)>) -> Delta {
        Delta {
            records,
            ..Delta::default()
        }
    }

    #[test]
    fn changes_decode_by_tree_and_bad_ones_are_counted_not_fatal() {
        let action = OperatorAction {
            id: 7,
            at: Timestamp(T0),
            actor: "ops".into(),
            kind: ActionKind::Acknowledge {
                incident: "i-1".into(),
            },
        };
        let ledger = AgentLedger {
            site: "dc2".into(),
            acked_upto: 9,
            ..AgentLedger::default()
        };
        let silence = Silence {
            id: 3,
            site: Some("dc2".into()),
            zone: None,
            category: None,
            starts_at: Timestamp(T0),
            ends_at: Timestamp(T0 + 60 * MIN),
            created_by: "ops".into(),
            comment: "maintenance".into(),
        };
        let delta = decode(vec![
            change(1, RECORDS, b"a1\0", json(&event("a1", "dc1", 1))),
            change(
                2,
                crate::action_log::ACTIONS,
                &7u64.to_be_bytes(),
                json(&action),
            ),
            change(3, crate::store::AGENTS, b"a2", json(&ledger)),
            change(4, RECORDS, b"a1\0", b"not json".to_vec()),
            change(5, "notify", b"k", b"{}".to_vec()),
            change(6, crate::store::AGENTS, b"\xff", json(&ledger)),
            change(
                7,
                crate::notifier::SILENCES,
                &3u64.to_be_bytes(),
                json(&silence),
            ),
            change(
                8,
                crate::notifier::SILENCES,
                &4u64.to_be_bytes(),
                b"{".to_vec(),
            ),
        ]);
        assert_eq!(delta.records.len(), 1);
        assert_eq!(delta.records[0].0, 1, "the ingest id is kept");
        assert_eq!(delta.actions, vec![action]);
        assert_eq!(delta.ledgers, vec![("a2".to_string(), ledger)]);
        assert_eq!(delta.silences, vec![silence]);
        assert_eq!(delta.undecodable, 4);
        assert_eq!(delta.len(), 8, "every change counted, decoded or not");
    }

    #[test]
    fn new_records_reach_the_analysis_and_summaries_once_each() {
        let mut state = empty();
        let first = delta(vec![
            (1, event("a1", "dc1", 1)),
            (2, summary("a1", "dc1", 2)),
        ]);
        let applied = apply(&mut state, first, None, 0);
        assert_eq!(applied.records, 2);
        assert_eq!(state.analysis.event_count(), 1);
        let seen = |state: &CollectorState| {
            state
                .directory
                .sensor("dc1", "Z1", None, "r1-inlet")
                .map(|e| e.last_seen)
        };
        assert_eq!(seen(&state), Some(Timestamp(T0 + 3 * MIN)));
        assert_eq!(state.agents["a1"].records, 2);
        assert!(!state
            .analysis
            .incidents(Timestamp(T0 + 10 * MIN))
            .is_empty());

        // After a full rebuild that may have read ids up to 10: the same rows again are
        // dropped (the event by the analysis, the summary by the directory), id 11 is new.
        let again = delta(vec![
            (5, event("a1", "dc1", 1)),
            (6, summary("a1", "dc1", 2)),
            (11, summary("a1", "dc1", 3)),
        ]);
        let applied = apply(&mut state, again, None, 10);
        assert_eq!(
            applied,
            Applied {
                records: 1,
                skipped: 2,
                actions: 0,
                ledgers: 0
            }
        );
        assert_eq!(state.analysis.event_count(), 1);
        assert_eq!(seen(&state), Some(Timestamp(T0 + 4 * MIN)));
        assert_eq!(state.agents["a1"].records, 3);
    }

    #[test]
    fn an_active_partition_leaves_its_own_sites_to_its_ingest() {
        let mut state = empty();
        let mut d = delta(vec![(1, event("a1", "dc1", 1)), (2, event("b1", "dc2", 1))]);
        d.ledgers = vec![
            (
                "a1".into(),
                AgentLedger {
                    site: "dc1".into(),
                    acked_upto: 4,
                    ..AgentLedger::default()
                },
            ),
            (
                "b1".into(),
                AgentLedger {
                    site: "dc2".into(),
                    acked_upto: 5,
                    highest_seen: 6,
                    ..AgentLedger::default()
                },
            ),
        ];
        let own = vec!["dc1".to_string()];
        let applied = apply(&mut state, d, Some(&own), 0);
        assert_eq!(
            (applied.records, applied.skipped, applied.ledgers),
            (1, 1, 1)
        );
        assert!(!state.agents.contains_key("a1"), "dc1 is this partition's");
        let b1 = &state.agents["b1"];
        assert_eq!(
            (b1.site.as_str(), b1.acked_upto, b1.highest_seen),
            ("dc2", 5, 6)
        );
        assert_eq!(b1.records, 1);
    }

    #[test]
    fn an_action_written_elsewhere_reaches_the_analysis() {
        let mut state = empty();
        apply(&mut state, delta(vec![(1, event("a1", "dc1", 1))]), None, 0);
        let incident = state
            .analysis
            .incidents(Timestamp(T0 + 10 * MIN))
            .first()
            .map(|i| i.id.clone())
            .expect("an incident");
        let action = OperatorAction {
            id: 1,
            at: Timestamp(T0 + 2 * MIN),
            actor: "ops".into(),
            kind: ActionKind::Acknowledge { incident },
        };
        let d = Delta {
            actions: vec![action.clone(), action],
            ..Delta::default()
        };
        assert_eq!(apply(&mut state, d, None, 0).actions, 2);
        assert_eq!(
            state.analysis.actions().count(),
            1,
            "a duplicate id is dropped"
        );
        assert!(
            state.analysis.unmatched_actions().is_empty(),
            "it matched the incident"
        );
    }
}
