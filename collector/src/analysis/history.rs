//! Where a scope's inputs come from when memory no longer holds them: the [`ScopeHistory`]
//! trait, read by a late event that must replay its scope from a checkpoint older than what
//! memory holds. The analysis stays free of I/O: it takes the trait; the daemon passes the
//! store ([`crate::store::CollectorStore`], through its scope index, whose entries hold each
//! event's body, [`crate::model::event_body`], so a read is one range scan), tests a
//! [`MemoryHistory`].
//!
//! Invariants:
//! - Every incident-relevant event (one with a fingerprint, [`crate::incidents::fingerprint_of`])
//!   is indexed under its *index scope*: the sanitised `{site}-{zone}-{category}` of its
//!   fingerprint ([`index_scope`]). It is exactly the analysis's scope with the zone partition,
//!   and starts with the analysis's scope and a `-` with the site-segment partition (sanitising
//!   works character by character, so the sanitised site is a prefix of the sanitised
//!   fingerprint), so a [`ScopeSelector`] picks every event of one analysis scope and no other.
//! - An implementation answers the events of a selector in a key range in [`OrderKey`] order,
//!   each once, whatever it stores.

use crate::incidents::fingerprint_of;
use crate::model::{sanitize, OrderKey, StoredEvent};
use coldaisle_core::wire::Payload;
use std::collections::BTreeMap;

/// Why a scope's history could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reading the stored history of scope `{scope}`: {source}")]
pub struct HistoryError {
    /// The scope read.
    pub scope: String,
    /// What failed underneath (the store's error).
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Which index scopes one analysis scope covers (see the module invariants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeSelector {
    /// Exactly this index scope (the zone partition: one scope per sanitised fingerprint).
    Exact(String),
    /// Every index scope starting with this segment and a `-` (the site-segment partition:
    /// one scope per first segment of the sanitised site).
    Segment(String),
    /// Every index scope (one analysis scope for everything).
    All,
}

impl ScopeSelector {
    /// True if an event indexed under `index_scope` belongs to the selected scope.
    pub fn matches(&self, index_scope: &str) -> bool {
        match self {
            ScopeSelector::Exact(scope) => index_scope == scope,
            ScopeSelector::Segment(segment) => index_scope
                .strip_prefix(segment.as_str())
                .is_some_and(|rest| rest.starts_with('-')),
            ScopeSelector::All => true,
        }
    }

    /// The prefix every selected index scope starts with (for a range scan).
    pub fn prefix(&self) -> String {
        match self {
            ScopeSelector::Exact(scope) => scope.clone(),
            ScopeSelector::Segment(segment) => format!("{segment}-"),
            ScopeSelector::All => String::new(),
        }
    }

    /// The scope's name, for errors and logs.
    pub fn name(&self) -> &str {
        match self {
            ScopeSelector::Exact(scope) | ScopeSelector::Segment(scope) => scope,
            ScopeSelector::All => "*",
        }
    }
}

/// The index scope of an event: the sanitised `{site}-{zone}-{category}` of its fingerprint;
/// `None` for what has none (summaries, forecasts), which no scope replays.
pub fn index_scope(payload: &Payload) -> Option<String> {
    fingerprint_of(payload).map(|f| sanitize(&format!("{}-{}-{}", f.site, f.zone, f.category)))
}

/// The index scopes of every category of `(site, zone)`: a zone's events are read as one
/// range scan per category, then filtered to the exact place (sanitising is lossy).
pub fn zone_selectors(site: &str, zone: &str) -> Vec<ScopeSelector> {
    super::scope::CATEGORIES
        .iter()
        .map(|c| ScopeSelector::Exact(sanitize(&format!("{site}-{zone}-{c}"))))
        .collect()
}

/// The stored events of a scope, read when a late event replays it from before what memory
/// holds.
pub trait ScopeHistory {
    /// The events of `scope` with `from <= order key < to`, in order-key order, each once.
    fn events(
        &self,
        scope: &ScopeSelector,
        from: &OrderKey,
        to: &OrderKey,
    ) -> Result<Vec<StoredEvent>, HistoryError>;
}

/// A history held in memory: the reference the store's index must equal (tests), and what
/// an analysis without store uses.
#[derive(Debug, Clone, Default)]
pub struct MemoryHistory {
    /// Every incident-relevant event added, by order key, with its index scope.
    events: BTreeMap<OrderKey, (String, StoredEvent)>,
}

impl MemoryHistory {
    /// Adds an event (one without index scope is ignored, as the store's index ignores it).
    pub fn add(&mut self, ev: StoredEvent) {
        if let Some(scope) = index_scope(&ev.payload) {
            self.events.insert(ev.order_key(), (scope, ev));
        }
    }

    /// Forgets the events before event-time key `before` (as retention deletes records).
    pub fn forget_before(&mut self, before: &OrderKey) {
        self.events = self.events.split_off(before);
    }

    /// Number of events held.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True if no event is held.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

impl ScopeHistory for MemoryHistory {
    fn events(
        &self,
        scope: &ScopeSelector,
        from: &OrderKey,
        to: &OrderKey,
    ) -> Result<Vec<StoredEvent>, HistoryError> {
        if from >= to {
            return Ok(Vec::new());
        }
        Ok(self
            .events
            .range(from.clone()..to.clone())
            .filter(|(_, (s, _))| scope.matches(s))
            .map(|(_, (_, ev))| ev.clone())
            .collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::incidents::tests::{device, sensor, zone, MIN, T0};
    use coldaisle_core::{EventState, Severity, Timestamp};

    fn key(ts: i64) -> OrderKey {
        (Timestamp(ts), String::new(), 0)
    }

    #[test]
    fn selectors_pick_their_scope_and_no_other() {
        let exact = ScopeSelector::Exact("dc1-z1-thermal".into());
        assert!(exact.matches("dc1-z1-thermal"));
        assert!(!exact.matches("dc1-z1-thermal-x"));
        assert!(!exact.matches("dc1-z10-thermal"));
        let segment = ScopeSelector::Segment("dc1".into());
        assert!(segment.matches("dc1-z1-thermal"));
        assert!(segment.matches("dc1-x-z2-device"));
        assert!(!segment.matches("dc10-z1-thermal"));
        assert!(!segment.matches("dc1"));
        assert_eq!(segment.prefix(), "dc1-");
    }

    #[test]
    fn memory_history_answers_a_scope_in_order_within_the_range() {
        let mut h = MemoryHistory::default();
        let events = [
            sensor(
                "a2",
                2,
                "Z1",
                "r1",
                EventState::Raised,
                Severity::Warning,
                28.0,
                T0,
            ),
            sensor(
                "a1",
                1,
                "Z1",
                "r2",
                EventState::Raised,
                Severity::Warning,
                28.0,
                T0,
            ),
            zone(
                "a1",
                3,
                "Z1",
                EventState::Raised,
                Severity::Warning,
                &["r1"],
                T0 + MIN,
            ),
            sensor(
                "a1",
                4,
                "Z2",
                "r9",
                EventState::Raised,
                Severity::Warning,
                28.0,
                T0 + MIN,
            ),
            device("a1", 5, "Z1", "pdu", EventState::Raised, T0 + MIN),
            sensor(
                "a1",
                6,
                "Z1",
                "r1",
                EventState::Cleared,
                Severity::Warning,
                26.0,
                T0 + 2 * MIN,
            ),
        ];
        for e in events.iter().rev() {
            h.add(e.clone());
        }
        let z1 = ScopeSelector::Exact(index_scope(&events[0].payload).unwrap());
        let got: Vec<u64> = h
            .events(&z1, &key(T0), &key(T0 + 2 * MIN))
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        // Time, then agent; the zone event shares the thermal scope; Z2 and the device do not;
        // the end is exclusive.
        assert_eq!(got, vec![1, 2, 3]);
        let site = ScopeSelector::Segment("dc1".into());
        assert_eq!(
            h.events(&site, &key(T0 + MIN), &key(T0 + 3 * MIN))
                .unwrap()
                .len(),
            4
        );
        h.forget_before(&key(T0 + MIN));
        assert_eq!(h.len(), 4);
        assert!(h.events(&z1, &key(T0 + MIN), &key(T0)).unwrap().is_empty());
    }
}
