//! The hot span: event bodies older than a short span before the latest event leave memory;
//! the store keeps them, indexed by scope ([`super::history`]).
//!
//! With a hot span set ([`Analysis::with_hot_span`]), every [`trim_every`] of event time
//! [`Analysis::trim_hot`] moves the *hot floor* to `latest − hot span` and:
//! - summarises every held incident final before the hot floor ([`super::prune`]'s
//!   `ArchivedIncident`: probable cause, rack peaks), while the events it reads are all held,
//!   so the read side needs none of them any more;
//! - drops from each scope's inputs the keys of its events before the hot floor (the scope's
//!   cold boundary, [`super::shard`]), and drops those events from `events`, `seen` and the
//!   zone index, unless they are *evidence*: zone events that an incident not final before
//!   the hot floor still reads (from [`crate::cause::COOLING_LEAD`] before its opening), and
//!   density evidence within `density_lookback` of the horizon floor or of a problem's
//!   opening (as before, [`super::prune`]).
//!
//! - lets the timelines of the incidents final before the hot floor leave the engines
//!   (after their summaries are taken): each keeps a stored head, its first event's key and
//!   its length ([`crate::incidents::StoredTimeline`]), read back from the store when the
//!   API asks for that incident ([`super::stored_timeline`]).
//!
//! What stays as it was: the rest of the engines (incidents' small fields, problems, rollback
//! marks). A mark stays valid because a trim changes no engine state a mark records (a mark
//! counts timeline entries, held or stored); a late event before the hot floor (but after the
//! horizon floor) rolls its scope back to a mark and replays, reading the scope's events
//! before the hot floor through a [`ScopeHistory`] and the rest from memory; a rollback
//! before an incident's last event shortens its stored head, and the replay appends to the
//! timeline held after it.
//!
//! A replay that reaches before the hot floor (a *deep* replay) can change what was frozen:
//! - before it, the summaries of the held incidents that it can change are dropped: those of
//!   the replayed scope not final before the replay's first input, and those of the late
//!   events' zones (any category: their cause reads the zone) not final before the event;
//! - after it, the held incidents final before the hot floor without a summary get one,
//!   computed from the history (their zone over the cause window), and the zone events that
//!   the replayed scope's unfinal incidents read are loaded back from the history as evidence.
//!
//! A problem's tally never counts a summary that a deep replay can change: it counts only
//! incidents their scope has forgotten, final before the horizon floor
//! (`Shard::fold_final`), and a deep replay drops only summaries of held incidents. An
//! incident final before the hot floor but not before the horizon floor keeps its summary
//! outside any tally (read one by one) until the prune that forgets it.
//!
//! A history read error leaves the scope consistent: the replay does not start (the engines
//! keep their state without the late input), the input stays pending and the next catch-up of
//! that scope retries; the error is counted ([`Analysis::history_errors`]) and logged with the
//! scope. A read error while recomputing a summary after a deep replay is counted and logged
//! the same way; that incident's cause then comes from what memory holds.
//!
//! Known gap: the orphan-clear count ([`Analysis::orphan_clears`], a `/metrics` figure) can
//! come out one lower than an analysis holding every event after a deep replay (found by
//! `hot_tests` at 500 cases; not investigated yet). Incidents and problems do not depend on it.
//!
//! Duplicates: the daemon hands each stored `(agent, seq)` to the analysis once: the store
//! keys records by it and returns only the records it had not stored
//! (`CollectorStore::store_claimed`, `Stored::new`; a found key or a seq at or below the ack is
//! counted as a duplicate), and `ingest::apply` applies only `stored.new`; start-up reads each
//! stored record once (`checkpoint::load`). So `seen` can follow the hot span. The one
//! exception, a record whose flush failed and that its agent resends (the store counts it as
//! new again), is harmless: within the hot span `seen` drops it; before the hot floor it is
//! held only as evidence (same key, same content), and a replay reads events before the
//! scope's cold boundary from the history only, so it is applied once.

use super::history::{zone_selectors, HistoryError, ScopeHistory};
use super::prune::ArchivedIncident;
use super::Analysis;
use crate::cause::COOLING_LEAD;
use crate::incidents::Incident;
use crate::model::{OrderKey, StoredEvent};
use coldaisle_core::Timestamp;
use std::collections::BTreeMap;
use std::time::Duration;

/// The hot span the daemon runs with: event bodies of the last day stay in memory.
pub const DEFAULT_HOT_SPAN: Duration = Duration::from_secs(24 * 3600);

/// Event time between two trims: an eighth of the hot span (at least a second), so memory
/// holds at most 9/8 of it (plus the evidence).
pub fn trim_every(hot_span: Duration) -> Duration {
    (hot_span / 8).max(Duration::from_secs(1))
}

/// A history with nothing in it, for analyses without a hot span: nothing is ever read from
/// it. An analysis with a hot span that is fed through it fails its deep replays (counted).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHistory;

impl ScopeHistory for NoHistory {
    fn events(
        &self,
        scope: &super::history::ScopeSelector,
        _from: &OrderKey,
        _to: &OrderKey,
    ) -> Result<Vec<StoredEvent>, HistoryError> {
        Err(HistoryError {
            scope: scope.name().to_string(),
            source: "this analysis was given no stored history".into(),
        })
    }
}

impl Analysis {
    /// Keeps event bodies only for `span` of event time before the latest event (see
    /// [`super::hot`]); the caller must then feed it with a history
    /// ([`Analysis::ingest_with_history`], [`Analysis::end_bulk_with_history`]). `None` (the
    /// default) keeps every event within the horizon. A span at least as long as the horizon
    /// changes nothing.
    pub fn with_hot_span(mut self, span: Option<Duration>) -> Self {
        self.hot_span = span;
        self
    }

    /// [`Analysis::with_hot_span`] in place.
    pub fn set_hot_span(&mut self, span: Option<Duration>) {
        self.hot_span = span;
    }

    /// The hot span (carried over when a checkpoint replaces the analysis).
    pub fn hot_span(&self) -> Option<Duration> {
        self.hot_span
    }

    /// Event bodies of scope inputs before it have left memory; `None` until the first trim.
    pub fn hot_floor(&self) -> Option<Timestamp> {
        self.hot_floor
    }

    /// Replays refused (and retried later) or summaries left to memory because the stored
    /// history could not be read.
    pub fn history_errors(&self) -> u64 {
        self.history_errors
    }

    /// True if event time `ts` is before the hot floor: its body is read from the history.
    pub(super) fn is_cold(&self, ts: Timestamp) -> bool {
        self.hot_floor.is_some_and(|hot| ts < hot)
    }

    /// Notes an event before the hot floor just ingested: its zone's frozen summaries may
    /// change (see the module doc).
    pub(super) fn note_cold_event(&mut self, ev: &StoredEvent) {
        if let Some((site, zone)) = super::place_of(&ev.payload) {
            let ts = ev.payload.ts();
            self.cold_places
                .entry((site.to_string(), zone.to_string()))
                .and_modify(|t| *t = (*t).min(ts))
                .or_insert(ts);
        }
    }

    /// Runs [`Analysis::trim_hot`] if the latest event time has passed the next trim time.
    pub(super) fn trim_if_due(&mut self) {
        if self.bulk.is_some() || self.hot_span.is_none() {
            return;
        }
        let Some(latest) = self.latest_event_time() else {
            return;
        };
        if self.next_trim.is_some_and(|next| latest < next) {
            return;
        }
        self.trim_hot(latest);
        if let Some(span) = self.hot_span {
            self.next_trim = Some(latest.plus(trim_every(span)));
        }
    }

    /// Moves the hot floor to `now − hot span` (never back) and forgets the event bodies
    /// before it that nothing reads (see the module doc). Returns how many events it dropped.
    /// Does nothing without a hot span, while loading in bulk, or when the span is not
    /// shorter than the horizon.
    pub fn trim_hot(&mut self, now: Timestamp) -> usize {
        let Some(span) = self.hot_span else {
            return 0;
        };
        if self.bulk.is_some() || span >= self.horizon {
            return 0;
        }
        let hot = self
            .hot_floor
            .map_or(now.minus(span), |old| old.max(now.minus(span)));
        self.archive_final_before(hot);
        for shard in self.shards.values_mut() {
            self.evidence.extend(shard.trim_cold(hot));
            shard.incidents.store_timelines_final_before(hot);
        }
        self.hot_floor = Some(hot);
        self.sweep_evidence(hot, self.floor)
    }

    /// Before the scopes `deep` replay from before the hot floor: the summaries of the held
    /// incidents that the replays and the late events before the hot floor can change (see
    /// the module doc), as `(scope, incident id)`. The caller drops them once the replays ran
    /// (those of a scope whose replay failed stay: nothing changed there).
    pub(super) fn summaries_a_deep_replay_can_change(
        &self,
        deep: &[(String, Timestamp)],
    ) -> Vec<(String, String)> {
        let mut drop: Vec<(String, String)> = Vec::new();
        let frozen = |id: &str| self.archive.contains_key(id);
        for (scope, from) in deep {
            if let Some(shard) = self.shards.get(scope) {
                drop.extend(
                    shard
                        .incidents
                        .unfinal_ids(*from)
                        .filter(|(id, _)| frozen(id))
                        .map(|(id, _)| (scope.clone(), id.to_string())),
                );
            }
        }
        for ((site, zone), ts) in &self.cold_places {
            for (scope, shard) in &self.shards {
                drop.extend(
                    shard
                        .incidents
                        .unfinal_ids(*ts)
                        .filter(|(id, fp)| fp.site == *site && fp.zone == *zone && frozen(id))
                        .map(|(id, _)| (scope.clone(), id.to_string())),
                );
            }
        }
        drop
    }

    /// After the scopes `deep` replayed from before the hot floor: summaries for the held
    /// incidents final before it that have none (from the history), and the zone events the
    /// replayed scopes' unfinal incidents read loaded back as evidence.
    pub(super) fn refreeze_after_deep_replay(
        &mut self,
        deep: &[(String, Timestamp)],
        history: &dyn ScopeHistory,
    ) {
        self.cold_places.clear();
        let Some(hot) = self.hot_floor else {
            return;
        };
        let newly: Vec<Incident> = self
            .shards
            .values()
            .flat_map(|s| {
                s.incidents
                    .final_before(hot, |id| self.archive.contains_key(id))
            })
            .collect();
        for incident in newly {
            match summary_from_history(&incident, history) {
                Ok(summary) => {
                    self.archive.insert(incident.id, summary);
                }
                Err(e) => self.note_history_error(&e),
            }
        }
        let mut pins: BTreeMap<(String, String), Timestamp> = BTreeMap::new();
        for (scope, _) in deep {
            let Some(shard) = self.shards.get(scope) else {
                continue;
            };
            for (fp, opened) in shard.incidents.unfinal(hot) {
                let pin = opened.minus(COOLING_LEAD);
                if pin < hot {
                    pins.entry((fp.site.clone(), fp.zone.clone()))
                        .and_modify(|p| *p = (*p).min(pin))
                        .or_insert(pin);
                }
            }
        }
        for ((site, zone), pin) in pins {
            match read_zone(history, &site, &zone, pin, hot) {
                Ok(events) => {
                    for ev in events {
                        self.hold_as_evidence(ev);
                    }
                }
                Err(e) => self.note_history_error(&e),
            }
        }
    }

    /// Holds `ev` (read from the history) as evidence, unless it is held already.
    fn hold_as_evidence(&mut self, ev: StoredEvent) {
        let key = ev.order_key();
        if self.events.contains_key(&key) {
            return;
        }
        self.seen.insert((ev.agent.clone(), ev.seq));
        self.by_zone.insert(&key, &ev);
        self.evidence.insert(key.clone());
        self.events.insert(key, ev);
    }

    /// Counts and logs a failed history read.
    pub(super) fn note_history_error(&mut self, error: &HistoryError) {
        self.history_errors += 1;
        tracing::warn!(scope = %error.scope, error = %error,
            "stored history of a scope not readable: its replay waits for the next input of the scope");
    }
}

/// One minute of event time, ms: the resolution of the counts of events that left memory.
const COUNT_BUCKET_MS: i64 = 60_000;

/// Counts one event at `ts` that left memory.
pub(super) fn count_cold(counts: &mut BTreeMap<i64, u64>, ts: Timestamp) {
    *counts
        .entry(ts.millis().div_euclid(COUNT_BUCKET_MS))
        .or_default() += 1;
}

/// Forgets the counts of minutes wholly before `floor` (events before it are not counted).
pub(super) fn forget_cold_counts_before(counts: &mut BTreeMap<i64, u64>, floor: Timestamp) {
    let first = floor.millis().div_euclid(COUNT_BUCKET_MS);
    *counts = counts.split_off(&first);
}

/// Events that left memory in the minutes whose start is in `[from, to)`.
pub(super) fn cold_count_between(
    counts: &BTreeMap<i64, u64>,
    from: Timestamp,
    to: Timestamp,
) -> usize {
    let first = from.millis().div_euclid(COUNT_BUCKET_MS)
        + i64::from(from.millis().rem_euclid(COUNT_BUCKET_MS) != 0);
    let end = to.millis().div_euclid(COUNT_BUCKET_MS)
        + i64::from(to.millis().rem_euclid(COUNT_BUCKET_MS) != 0);
    if first >= end {
        return 0;
    }
    let sum: u64 = counts.range(first..end).map(|(_, n)| n).sum();
    usize::try_from(sum).unwrap_or(usize::MAX)
}

/// The summary of `incident` (final before the hot floor) from the stored events of its zone
/// over its cause window: what [`Analysis::cause_from_events`] and the recurrence point read
/// while the events were held.
fn summary_from_history(
    incident: &Incident,
    history: &dyn ScopeHistory,
) -> Result<ArchivedIncident, HistoryError> {
    let fp = &incident.fingerprint;
    let (from, to) = crate::cause::zone_window(incident.opened_at, incident.last_event_at);
    let zone = read_zone(
        history,
        &fp.site,
        &fp.zone,
        from,
        to.plus(Duration::from_millis(1)),
    )?;
    let by_key: BTreeMap<OrderKey, StoredEvent> =
        zone.into_iter().map(|e| (e.order_key(), e)).collect();
    let own = super::prune::timeline_events(&by_key, incident);
    let zone: Vec<&StoredEvent> = by_key.values().collect();
    let point = crate::recurrence::IncidentPoint::of_events(incident.opened_at, &own);
    Ok(ArchivedIncident {
        opened_at: incident.opened_at,
        cause: crate::cause::explain(&own, &zone),
        racks: point.racks.into_iter().map(|r| (r.rack, r.peak)).collect(),
    })
}

/// The stored events of `(site, zone)`, every category, with event time in `[from, to)`, in
/// order-key order: one range scan of the scope index per category, filtered to the exact
/// place (the index's sanitising is lossy).
fn read_zone(
    history: &dyn ScopeHistory,
    site: &str,
    zone: &str,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<StoredEvent>, HistoryError> {
    let (from, to): (OrderKey, OrderKey) = ((from, String::new(), 0), (to, String::new(), 0));
    let mut events = Vec::new();
    for selector in zone_selectors(site, zone) {
        events.extend(history.events(&selector, &from, &to)?);
    }
    events.retain(|e| super::place_of(&e.payload) == Some((site, zone)));
    events.sort_by_key(StoredEvent::order_key);
    Ok(events)
}
