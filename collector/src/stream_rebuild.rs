//! The full rebuild of the collector's state from every stored record, *streamed*: the records
//! are read and applied in event-time order, one at a time, so the analysis prunes what falls
//! behind its horizon as it goes (its automatic prune runs on in-order ingest) and the peak
//! memory of a rebuild follows the horizon, not the store. Used at start-up when there is no
//! usable checkpoint (the first start after an upgrade, a lost or other-version checkpoint)
//! and by every collector of a cluster ([`crate::daemon::load_state`]).
//!
//! How the order is made (the store keeps records by `(agent, collector seq)`, not by time):
//! - Each agent's records are read a chunk of [`CHUNK`] at a time, one range scan each
//!   ([`CollectorStore::agent_records`]), and each chunk is sorted by `(event time, seq)`.
//! - The agents are merged through a heap of their next records, by `(event time, agent,
//!   seq)`. At most one chunk per agent is held: memory is O(agents × [`CHUNK`]).
//! - Operator actions (the action log, few) are merged in by time: an action is applied before
//!   the first record of a later millisecond, i.e. after every event of its own millisecond,
//!   which is the analysis's input order.
//!
//! Invariants and limits:
//! - An agent's records are in seq order and nearly in time order. A record whose event time
//!   is before one already applied (an agent's clock stepped back across a chunk boundary) is
//!   *out of order*: it is applied all the same, as a late event, and the analysis replays its
//!   scope from before it, exactly as the bulk rebuild would have applied it, as long as it is
//!   within the analysis's horizon of the latest event applied. One older than that is stored
//!   and counted as too late (`Analysis::too_late`), as the live ingest counts it; only then
//!   can the streamed result differ from a bulk rebuild's. Both counts are returned and logged.
//! - At the end the analysis is pruned once at its latest event time, so its floor is the one
//!   a bulk rebuild ends with, and `incidents(now)` / `problems()` are the bulk rebuild's
//!   (test `streamed_rebuild_equals_the_bulk_one` below).
//! - Reading summaries note their sensors in the fleet directory ([`crate::state::Directory`],
//!   order-free); agent record counts are counted as in the bulk rebuild (each stored record
//!   once).

use crate::actions::OperatorAction;
use crate::checkpoint::Loaded;
use crate::state::CollectorState;
use crate::store::CollectorStore;
use coldaisle_core::wire::Record;
use coldaisle_core::Timestamp;
use coldaisle_store::StoreError;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Instant;

/// Records read per agent and range scan (decoded records buffered: agents × this).
pub const CHUNK: usize = 64;

/// Records applied between two progress lines in the log.
const PROGRESS_EVERY: u64 = 1_000_000;

/// What a streamed rebuild did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rebuilt {
    /// Position covered, records applied, undecodable records (`checkpoint` is 0).
    pub loaded: Loaded,
    /// Agents read.
    pub agents: usize,
    /// Records applied after one with a later event time (see the module doc).
    pub out_of_order: u64,
    /// Events and actions the analysis refused as older than its floor.
    pub too_late: u64,
}

/// One agent's records not applied yet: the rest of its current chunk, and where to read on.
struct Cursor {
    agent: String,
    /// The current chunk's records not applied yet, by `(event time, seq)`.
    buffered: VecDeque<Record>,
    /// The collector seq to read after; `None` once the agent's last chunk was read.
    after: Option<u64>,
}

impl Cursor {
    /// Reads the agent's next chunk if its buffer is empty and it has more. Returns the
    /// undecodable records of the chunk read.
    fn refill(&mut self, store: &CollectorStore) -> Result<u64, StoreError> {
        let mut undecodable = 0;
        while self.buffered.is_empty() {
            let Some(after) = self.after else { break };
            let chunk = store.agent_records(&self.agent, after, CHUNK)?;
            undecodable += chunk.undecodable;
            self.after = chunk.last;
            let mut records = chunk.records;
            records.sort_by_key(|r| (r.payload.ts(), r.seq));
            self.buffered = records.into();
        }
        Ok(undecodable)
    }

    /// The heap entry of the next record, if any.
    /// Cursors are indexed in agent order, so `(event time, index, seq)` orders as `(event
    /// time, agent, seq)` does.
    fn head(&self, index: usize) -> Option<Reverse<(Timestamp, usize, u64)>> {
        self.buffered
            .front()
            .map(|r| Reverse((r.payload.ts(), index, r.seq)))
    }
}

/// Fills the empty `state` from every stored record in event-time order, applying `actions`
/// (the action log) in time among them; see the module doc. Only store failures are errors.
pub fn rebuild(
    state: &mut CollectorState,
    store: &CollectorStore,
    actions: Vec<OperatorAction>,
) -> Result<Rebuilt, StoreError> {
    let started = Instant::now();
    // Read before the records: every record stored after it is in the next start's tail.
    let position = store.position()?;
    let mut out = Rebuilt {
        loaded: Loaded {
            position,
            ..Loaded::default()
        },
        ..Rebuilt::default()
    };
    let mut actions = actions;
    actions.sort_by_key(|a| (a.at, a.id));
    let mut actions = actions.into_iter().peekable();
    let mut cursors: Vec<Cursor> = store
        .record_agents()?
        .into_iter()
        .map(|agent| Cursor {
            agent,
            buffered: VecDeque::new(),
            after: Some(0),
        })
        .collect();
    out.agents = cursors.len();
    let mut heap = BinaryHeap::with_capacity(cursors.len());
    for (index, cursor) in cursors.iter_mut().enumerate() {
        out.loaded.undecodable += cursor.refill(store)?;
        heap.extend(cursor.head(index));
    }
    let mut frontier: Option<Timestamp> = None;
    while let Some(Reverse((ts, index, _))) = heap.pop() {
        let cursor = &mut cursors[index];
        let Some(record) = cursor.buffered.pop_front() else {
            continue;
        };
        while let Some(action) = actions.next_if(|a| a.at < ts) {
            apply_action(state, action);
        }
        if frontier.is_some_and(|f| ts < f) {
            out.out_of_order += 1;
        }
        frontier = Some(frontier.map_or(ts, |f| f.max(ts)));
        state
            .agents
            .entry(record.agent.clone())
            .or_default()
            .records += 1;
        crate::ingest::apply_record(state, record);
        out.loaded.replayed += 1;
        if out.loaded.replayed % PROGRESS_EVERY == 0 {
            tracing::info!(
                records = out.loaded.replayed,
                events_held = state.analysis.event_count(),
                elapsed_ms = millis(started),
                "rebuilding from every record"
            );
        }
        out.loaded.undecodable += cursor.refill(store)?;
        heap.extend(cursor.head(index));
    }
    for action in actions {
        apply_action(state, action);
    }
    // The floor a bulk rebuild ends with (it prunes once at the latest event time).
    if let Some(latest) = state.analysis.latest_event_time() {
        state.analysis.prune(latest);
    }
    out.too_late = state.analysis.too_late();
    Ok(out)
}

/// Applies one operator action; one that matches nothing at its time is kept by the analysis
/// (reported by `unmatched_actions`), as in the bulk rebuild.
fn apply_action(state: &mut CollectorState, action: OperatorAction) {
    let id = action.id;
    if let Err(reason) = state.analysis.ingest_action(action) {
        tracing::debug!(action = id, reason = %reason, "stored operator action matches nothing at its time");
    }
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[path = "stream_rebuild_tests.rs"]
mod tests;
