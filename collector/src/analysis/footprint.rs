//! What the analysis holds, part by part: counts, and the JSON size of the parts that are
//! serialisable (a proxy for their heap size), so a benchmark can see which part grows with
//! history while the events held stay flat.
//!
//! Read-only and slow (it serialises every engine): for benchmarks and diagnostics, not for
//! the ingest path.

use super::Analysis;
use coldaisle_core::Timestamp;

/// The analysis's holdings by part ([`Analysis::footprint`]). `*_bytes` are JSON sizes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Events held (scope inputs and evidence).
    pub events: usize,
    /// `(agent, seq)` keys held, to drop duplicates.
    pub seen: usize,
    /// Events held only as evidence past their scope's floor.
    pub evidence: usize,
    /// Compact summaries of incidents final before the floor.
    pub archived: usize,
    /// JSON size of those summaries, ids included.
    pub archived_bytes: usize,
    /// Problems held (every scope).
    pub problems: usize,
    /// Incident ids in the problems' incident lists, summed.
    pub problem_incidents: usize,
    /// Entries of the problems' histories, summed.
    pub problem_history: usize,
    /// JSON size of the problem engines (problems, streams, links).
    pub problem_bytes: usize,
    /// Incidents held by the incident engines.
    pub incidents: usize,
    /// Timeline entries of those incidents held in memory, summed.
    pub timeline_entries: usize,
    /// Timeline entries of those incidents left to the store (their stored heads), summed.
    pub stored_timeline_entries: usize,
    /// JSON size of the incident engines.
    pub incident_bytes: usize,
    /// JSON size of the scopes whole: engines, input keys and rollback checkpoints.
    pub shard_bytes: usize,
    /// Pager deliveries recorded for chronicles.
    pub notifications: usize,
    /// Operator actions held.
    pub actions: usize,
}

impl Analysis {
    /// What the analysis holds, part by part, with incidents as of `now` (see the module
    /// documentation; slow).
    pub fn footprint(&self, now: Timestamp) -> Footprint {
        let mut f = Footprint {
            events: self.events.len(),
            seen: self.seen.len(),
            evidence: self.evidence.len(),
            archived: self.archive.len(),
            archived_bytes: json(&self.archive),
            notifications: self.notifications.values().map(Vec::len).sum(),
            actions: self.actions.len(),
            ..Footprint::default()
        };
        for shard in self.shards.values() {
            let problems = shard.problems.problems();
            f.problems += problems.len();
            f.problem_incidents += problems.iter().map(|p| p.incidents.len()).sum::<usize>();
            f.problem_history += problems.iter().map(|p| p.history.len()).sum::<usize>();
            f.problem_bytes += json(&shard.problems);
            let incidents = shard.incidents.incidents(now);
            f.incidents += incidents.len();
            f.timeline_entries += incidents.iter().map(|i| i.timeline.len()).sum::<usize>();
            f.stored_timeline_entries += incidents
                .iter()
                .map(|i| i.event_count() - i.timeline.len())
                .sum::<usize>();
            f.incident_bytes += json(&shard.incidents);
            f.shard_bytes += json(shard);
        }
        f
    }
}

/// JSON size of `value` in bytes (0 if it does not serialise).
fn json<T: serde::Serialize>(value: &T) -> usize {
    serde_json::to_vec(value).map_or(0, |v| v.len())
}
