//! The fleet directory: every sensor the collector has seen a reading summary of, where it is
//! (site → zone → rack) and what it measures, with when it was last seen. What the zone list,
//! the rack counts and the rows of a zone report need that is not a figure; the figures come
//! from the stored roll-ups ([`crate::rollup_store`]).
//!
//! Invariants:
//! - **Bounded by the fleet, not by history**: one entry per `(site, zone, rack, sensor)` ever
//!   seen, whatever the number of summaries; a sensor is never forgotten (a zone whose
//!   summaries are older than every in-memory horizon still lists its racks and sensors).
//! - **Order-free and idempotent**: noting a sensor keeps the latest `last_seen` (and the kind
//!   of that latest sighting), so a summary applied twice (a cluster's refresh overlap, a
//!   rebuild after a checkpoint) or out of order gives the same directory.
//! - Updated by ingest ([`crate::ingest::apply_record`]), carried by the checkpoint (format 4)
//!   and otherwise rebuilt at start-up from the day roll-ups ([`crate::start_up`]).
//!
//! Pure: no I/O, no clock.

use coldaisle_core::{ReadingSummary, SensorKind, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A sensor's place within its zone: its rack (`None` for a sensor without one) and its id.
pub type SensorPlace = (Option<String>, String);

/// What the directory keeps of one sensor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SensorEntry {
    /// What it measures (as of its latest sighting).
    pub kind: SensorKind,
    /// End of its latest summary seen (event time).
    pub last_seen: Timestamp,
}

/// One sensor of the directory, flat: the form the checkpoint stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectoryEntry {
    /// Site.
    pub site: String,
    /// Zone.
    pub zone: String,
    /// Rack, if the sensor has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    /// Sensor id.
    pub sensor: String,
    /// What it measures.
    pub kind: SensorKind,
    /// End of its latest summary seen.
    pub last_seen: Timestamp,
}

/// The sensors of the fleet by `(site, zone)`, then by [`SensorPlace`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Directory {
    /// Sensors by zone; a zone's racks in rack order, `None` (no rack) first.
    zones: BTreeMap<(String, String), BTreeMap<SensorPlace, SensorEntry>>,
}

impl Directory {
    /// Notes the sensor of `summary` as seen until its end.
    pub fn note(&mut self, summary: &ReadingSummary) {
        let loc = &summary.location;
        self.note_sensor(
            &loc.site,
            &loc.zone,
            loc.rack.as_deref(),
            &summary.sensor,
            SensorEntry {
                kind: summary.kind,
                last_seen: summary.to,
            },
        );
    }

    /// Notes one sensor: added, or its `last_seen` (and kind) moved forward.
    pub fn note_sensor(
        &mut self,
        site: &str,
        zone: &str,
        rack: Option<&str>,
        sensor: &str,
        seen: SensorEntry,
    ) {
        let sensors = self
            .zones
            .entry((site.to_string(), zone.to_string()))
            .or_default();
        let entry = sensors
            .entry((rack.map(str::to_string), sensor.to_string()))
            .or_insert(seen);
        if seen.last_seen > entry.last_seen {
            *entry = seen;
        }
    }

    /// The entry of one sensor, if it was seen.
    pub fn sensor(
        &self,
        site: &str,
        zone: &str,
        rack: Option<&str>,
        sensor: &str,
    ) -> Option<&SensorEntry> {
        self.zones
            .get(&(site.to_string(), zone.to_string()))?
            .get(&(rack.map(str::to_string), sensor.to_string()))
    }

    /// Every `(site, zone)` with a sensor, sorted.
    pub fn zones(&self) -> impl Iterator<Item = (&str, &str)> {
        self.zones.keys().map(|(s, z)| (s.as_str(), z.as_str()))
    }

    /// The sensors of one zone by place (empty for an unknown zone).
    pub fn zone(
        &self,
        site: &str,
        zone: &str,
    ) -> impl Iterator<Item = (&SensorPlace, &SensorEntry)> {
        self.zones
            .get(&(site.to_string(), zone.to_string()))
            .into_iter()
            .flatten()
    }

    /// Distinct named racks of one zone.
    pub fn rack_count(&self, site: &str, zone: &str) -> usize {
        let mut racks: Vec<&str> = self
            .zone(site, zone)
            .filter_map(|((rack, _), _)| rack.as_deref())
            .collect();
        racks.dedup();
        racks.len()
    }

    /// Sensors held.
    pub fn len(&self) -> usize {
        self.zones.values().map(BTreeMap::len).sum()
    }

    /// True if no sensor was seen.
    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// Every sensor, flat, in `(site, zone, rack, sensor)` order (the checkpoint's form).
    pub fn entries(&self) -> Vec<DirectoryEntry> {
        self.zones
            .iter()
            .flat_map(|((site, zone), sensors)| {
                sensors
                    .iter()
                    .map(move |((rack, sensor), entry)| DirectoryEntry {
                        site: site.clone(),
                        zone: zone.clone(),
                        rack: rack.clone(),
                        sensor: sensor.clone(),
                        kind: entry.kind,
                        last_seen: entry.last_seen,
                    })
            })
            .collect()
    }

    /// Notes every entry of `entries` (a checkpoint's directory) into this one.
    pub fn extend(&mut self, entries: impl IntoIterator<Item = DirectoryEntry>) {
        for e in entries {
            self.note_sensor(
                &e.site,
                &e.zone,
                e.rack.as_deref(),
                &e.sensor,
                SensorEntry {
                    kind: e.kind,
                    last_seen: e.last_seen,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldaisle_core::Location;

    fn summary(
        zone: &str,
        rack: Option<&str>,
        sensor: &str,
        kind: SensorKind,
        to: i64,
    ) -> ReadingSummary {
        ReadingSummary {
            sensor: sensor.into(),
            kind,
            location: Location {
                site: "s1".into(),
                zone: zone.into(),
                row: None,
                rack: rack.map(str::to_string),
            },
            from: Timestamp(to - 60_000),
            to: Timestamp(to),
            count: 1,
            min: 20.0,
            max: 20.0,
            sum: 20.0,
            last: 20.0,
        }
    }

    #[test]
    fn one_entry_per_sensor_whatever_the_history() {
        let mut d = Directory::default();
        for minute in 0..10_000 {
            d.note(&summary(
                "Z1",
                Some("R1"),
                "a",
                SensorKind::InletTemp,
                minute * 60_000,
            ));
            d.note(&summary(
                "Z1",
                Some("R2"),
                "b",
                SensorKind::InletTemp,
                minute * 60_000,
            ));
            d.note(&summary(
                "Z1",
                None,
                "crac",
                SensorKind::SupplyAirTemp,
                minute * 60_000,
            ));
        }
        assert_eq!(d.len(), 3);
        assert_eq!(d.rack_count("s1", "Z1"), 2);
        assert_eq!(
            d.sensor("s1", "Z1", Some("R1"), "a").map(|e| e.last_seen),
            Some(Timestamp(9_999 * 60_000))
        );
        assert_eq!(d.zones().collect::<Vec<_>>(), vec![("s1", "Z1")]);
    }

    #[test]
    fn noting_is_idempotent_and_order_free() {
        let summaries = [
            summary("Z1", Some("R1"), "a", SensorKind::InletTemp, 3),
            summary("Z1", Some("R1"), "a", SensorKind::InletTemp, 1),
            summary("Z2", None, "b", SensorKind::Humidity, 2),
            summary("Z1", Some("R1"), "a", SensorKind::InletTemp, 2),
        ];
        let mut forward = Directory::default();
        for s in &summaries {
            forward.note(s);
        }
        let mut backward = Directory::default();
        for s in summaries.iter().rev().chain(summaries.iter()) {
            backward.note(s);
        }
        assert_eq!(forward, backward);
        assert_eq!(
            forward
                .sensor("s1", "Z1", Some("R1"), "a")
                .map(|e| e.last_seen),
            Some(Timestamp(3))
        );
        let mut round_trip = Directory::default();
        round_trip.extend(forward.entries());
        assert_eq!(round_trip, forward);
    }
}
