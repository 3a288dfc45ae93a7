//! Turns the entries of one level's scan into buckets, one per sensor and bucket in key order:
//! zone values ([`zone_value`]) and the per-sensor buckets older collectors wrote
//! ([`codec`]), which a store may hold beside a zone value of the same bucket (ingest merges
//! new summaries into the zone value and leaves the old per-sensor entries alone).
//!
//! Invariants:
//! - Entries arrive in key order, so the entries of one zone bucket (`site, zone, start`) are
//!   adjacent: the zone value first, then the per-sensor ones (their keys extend its key).
//! - Within a zone bucket the output is in [`zone_value::SensorKey`] order with one roll-up
//!   per sensor: when both shapes hold a sensor, their roll-ups are merged (roll-ups merge in
//!   any order, so nothing is counted twice or lost).

use crate::rollup::zone_value::{self, sensor_key};
use crate::rollup::{codec, Rollup};

/// Collects the buckets of a scan; `keep(rack, sensor)` says which sensors to return.
pub(crate) struct BucketReader<F> {
    keep: F,
    /// `site 0x00 zone 0x00 start` of the zone bucket being read.
    current: Vec<u8>,
    /// Where that zone bucket's roll-ups start in `out`.
    group_start: usize,
    /// The zone bucket being read has a zone value.
    zone_seen: bool,
    /// The zone bucket being read has per-sensor entries.
    per_sensor_seen: bool,
    out: Vec<Rollup>,
}

impl<F: Fn(Option<&str>, &str) -> bool> BucketReader<F> {
    /// A reader returning the sensors `keep` accepts.
    pub(crate) fn new(keep: F) -> Self {
        BucketReader {
            keep,
            current: Vec::new(),
            group_start: 0,
            zone_seen: false,
            per_sensor_seen: false,
            out: Vec::new(),
        }
    }

    /// Adds the entry `key`/`value` (after every entry of smaller key). An entry that does
    /// not decode is an error and adds nothing; the caller logs it and goes on.
    pub(crate) fn push(&mut self, key: &[u8], value: &[u8]) -> Result<(), codec::CodecError> {
        let zone_len = zone_value::zone_key_len(key).ok_or(codec::CodecError::Key)?;
        if key[..zone_len] != self.current[..] {
            self.close_group();
            self.current.clear();
            self.current.extend_from_slice(&key[..zone_len]);
        }
        if zone_len == key.len() {
            zone_value::decode_into(key, value, &self.keep, &mut self.out)?;
            self.zone_seen = true;
        } else {
            let bucket = codec::decode(key, value)?;
            if (self.keep)(bucket.location.rack.as_deref(), &bucket.sensor) {
                self.out.push(bucket);
            }
            self.per_sensor_seen = true;
        }
        Ok(())
    }

    /// Every bucket pushed, in key order.
    pub(crate) fn finish(mut self) -> Vec<Rollup> {
        self.close_group();
        self.out
    }

    /// Ends the current zone bucket: merges what its two shapes both hold.
    fn close_group(&mut self) {
        if self.zone_seen && self.per_sensor_seen {
            let mut group: Vec<Rollup> = self.out.drain(self.group_start..).collect();
            // Stable: the zone value's roll-up comes before the per-sensor one.
            group.sort_by_key(sensor_key);
            for bucket in group {
                let same = self.out.len() > self.group_start
                    && self
                        .out
                        .last()
                        .is_some_and(|last| sensor_key(last) == sensor_key(&bucket));
                match self.out.last_mut() {
                    Some(last) if same => last.merge(&bucket),
                    _ => self.out.push(bucket),
                }
            }
        }
        self.group_start = self.out.len();
        self.zone_seen = false;
        self.per_sensor_seen = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::{fold, Level};
    use coldaisle_core::{Location, ReadingSummary, SensorKind, Timestamp};

    fn summary(zone: &str, rack: &str, sensor: &str, value: f64) -> ReadingSummary {
        ReadingSummary {
            sensor: sensor.into(),
            kind: SensorKind::InletTemp,
            location: Location {
                site: "par1".into(),
                zone: zone.into(),
                row: None,
                rack: Some(rack.into()),
            },
            from: Timestamp(0),
            to: Timestamp(50_000),
            count: 1,
            min: value,
            max: value,
            sum: value,
            last: value,
        }
    }

    #[test]
    fn per_sensor_entries_beside_a_zone_value_are_merged_into_it() {
        let old = [
            summary("a", "r1", "t1", 10.0),
            summary("a", "r2", "t2", 11.0),
        ];
        let new = [
            summary("a", "r1", "t1", 30.0),
            summary("a", "r0", "t0", 5.0),
        ];
        let mut entries: Vec<(Vec<u8>, Vec<u8>)> = fold(&old, Level::Hour)
            .into_iter()
            .map(|(k, b)| (k, codec::encode(&b).expect("encode")))
            .collect();
        for (key, zone) in zone_value::group(fold(&new, Level::Hour).into_values()) {
            entries.push((key, zone_value::encode(&zone).expect("encode")));
        }
        // Another zone's per-sensor bucket after it.
        let other = fold(&[summary("b", "r1", "t9", 1.0)], Level::Hour);
        for (k, b) in other {
            entries.push((k, codec::encode(&b).expect("encode")));
        }
        entries.sort();
        let mut reader = BucketReader::new(|_, _| true);
        for (k, v) in &entries {
            reader.push(k, v).expect("push");
        }
        let buckets = reader.finish();
        let got: Vec<(&str, u64, f64)> = buckets
            .iter()
            .map(|b| (b.sensor.as_str(), b.count, b.max))
            .collect();
        assert_eq!(
            got,
            vec![
                ("t0", 1, 5.0),
                ("t1", 2, 30.0),
                ("t2", 1, 11.0),
                ("t9", 1, 1.0)
            ]
        );
        let mut only_r1 = BucketReader::new(|rack, _| rack == Some("r1"));
        for (k, v) in &entries {
            only_r1.push(k, v).expect("push");
        }
        let r1: Vec<String> = only_r1.finish().into_iter().map(|b| b.sensor).collect();
        assert_eq!(r1, vec!["t1", "t9"]);
    }
}
