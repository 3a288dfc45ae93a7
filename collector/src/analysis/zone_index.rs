//! The held events' keys by `(site, zone)`, in order-key order: what the probable cause reads
//! (an incident's zone around its window) and a problem's density evidence (its zone, or its
//! site's zones merged, over the look-back), without scanning every zone's events of that time.
//!
//! Invariant: it holds exactly the keys of the analysis's `events` that have a place (sensor,
//! device and zone events), each under its own `(site, zone)`. The analysis keeps it in step
//! on every insert and removal of an event; it is not part of the snapshot but rebuilt from the
//! events on restore ([`ZoneIndex::of_events`]). A `(site, zone)` whose last key goes is
//! dropped, so the index follows the events held, not history.

use super::place_of;
use crate::model::{OrderKey, StoredEvent};
use coldaisle_core::Timestamp;
use std::collections::{BTreeMap, BTreeSet};

/// Order keys of the held events, by site, then zone.
#[derive(Debug, Clone, Default)]
pub(super) struct ZoneIndex {
    by_site: BTreeMap<String, BTreeMap<String, BTreeSet<OrderKey>>>,
}

impl ZoneIndex {
    /// The index of `events` (on restore from a snapshot).
    pub(super) fn of_events(events: &BTreeMap<OrderKey, StoredEvent>) -> Self {
        let mut index = ZoneIndex::default();
        for (key, ev) in events {
            index.insert(key, ev);
        }
        index
    }

    /// Adds the key of `ev`, just added to the events held.
    pub(super) fn insert(&mut self, key: &OrderKey, ev: &StoredEvent) {
        let Some((site, zone)) = place_of(&ev.payload) else {
            return;
        };
        let zones = match self.by_site.get_mut(site) {
            Some(zones) => zones,
            None => self.by_site.entry(site.to_string()).or_default(),
        };
        let keys = match zones.get_mut(zone) {
            Some(keys) => keys,
            None => zones.entry(zone.to_string()).or_default(),
        };
        keys.insert(key.clone());
    }

    /// Removes the key of `ev`, just removed from the events held.
    pub(super) fn remove(&mut self, key: &OrderKey, ev: &StoredEvent) {
        let Some((site, zone)) = place_of(&ev.payload) else {
            return;
        };
        let Some(zones) = self.by_site.get_mut(site) else {
            return;
        };
        if let Some(keys) = zones.get_mut(zone) {
            keys.remove(key);
            if keys.is_empty() {
                zones.remove(zone);
            }
        }
        if zones.is_empty() {
            self.by_site.remove(site);
        }
    }

    /// Keys of the events held in `(site, zone)` with event time in `[from, to]`, in
    /// order-key order.
    pub(super) fn between<'a>(
        &'a self,
        site: &str,
        zone: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> impl Iterator<Item = &'a OrderKey> + 'a {
        self.by_site
            .get(site)
            .and_then(|zones| zones.get(zone))
            .into_iter()
            .flat_map(move |keys| {
                keys.range((from, String::new(), 0)..)
                    .take_while(move |(ts, _, _)| *ts <= to)
            })
    }

    /// Keys of the events held anywhere in `site` with event time in `[from, to]`, every zone's
    /// merged into order-key order (what a site-wide reader that sums in event order needs).
    pub(super) fn site_between(
        &self,
        site: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Vec<&OrderKey> {
        let mut keys: Vec<&OrderKey> = self
            .by_site
            .get(site)
            .into_iter()
            .flat_map(|zones| zones.keys())
            .flat_map(|zone| self.between(site, zone, from, to))
            .collect();
        keys.sort_unstable();
        keys
    }

    /// Every `(site, zone, key)` the index holds, in order (tests).
    #[cfg(test)]
    pub(super) fn entries(&self) -> Vec<(&str, &str, &OrderKey)> {
        self.by_site
            .iter()
            .flat_map(|(site, zones)| {
                zones.iter().flat_map(move |(zone, keys)| {
                    keys.iter().map(move |k| (site.as_str(), zone.as_str(), k))
                })
            })
            .collect()
    }
}
