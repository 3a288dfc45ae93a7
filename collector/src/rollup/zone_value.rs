//! The stored form of one zone's bucket: every sensor of a zone over one bucket in one value
//! ([`FORMAT_V2`]), so a zone's period is one read per bucket instead of one per sensor and
//! bucket (a 30-day report of a 500-sensor zone: 31 values instead of 15,500). Pure: bytes
//! in, [`Rollup`]s out, no I/O.
//!
//! The key is [`zone_time_key`] (`site 0x00 zone 0x00 start`) with nothing after the start.
//! A per-sensor key of the same bucket ([`Rollup::key`], what collectors wrote before this
//! layout: `… start rack 0x00 sensor`) extends it, so it sorts right after it and both shapes
//! share one tree: per-sensor buckets of older stores stay where they are and are read beside
//! the zone values (`rollup_store::bucket_reader` merges the two).
//!
//! Layout of [`FORMAT_V2`] (little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 1 | format tag `0x02` |
//! | 4 | entries (u32) |
//!
//! then per entry, in [`SensorKey`] order:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | flags: bit 0 the row is present, bit 1 the rack is present |
//! | 1 + n | kind: length `n`, then its snake_case name |
//! | 2 + n | rack, when present: length `n` (u16), then UTF-8 |
//! | 2 + n | sensor: length (u16), then UTF-8 |
//! | 2 + n | row, when present: length (u16), then UTF-8 |
//! | 8 × 7 | count (u64), sum, min, max, last (f64), last_at (i64 ms), summaries (u64) |
//!
//! Invariants:
//! - One entry per [`SensorKey`] (rack, or the empty name without one, then sensor), in that
//!   order: the order of the per-sensor keys of one bucket (`rack 0x00 sensor` sorts as the
//!   pair), so a zone value decodes into the buckets, in the order, that per-sensor keys gave.
//! - Site, zone and bucket start are in the key only.

use super::codec::{kind_of, push_numbers, read_bucket, text, CodecError, Reader};
use super::{key_time, zone_time_key, Rollup};
use coldaisle_core::Location;
use std::collections::BTreeMap;

/// Tag of the zone layout described in the module documentation.
pub const FORMAT_V2: u8 = 0x02;

const ROW_PRESENT: u8 = 1;
const RACK_PRESENT: u8 = 2;

/// A sensor's place in a zone value: its rack (empty without one), then its id.
pub type SensorKey = (String, String);

/// One zone's bucket: each sensor's roll-up, by [`SensorKey`].
pub type ZoneBucket = BTreeMap<SensorKey, Rollup>;

/// The [`SensorKey`] of `bucket`.
pub fn sensor_key(bucket: &Rollup) -> SensorKey {
    (
        bucket.location.rack.clone().unwrap_or_default(),
        bucket.sensor.clone(),
    )
}

/// The store key of the zone bucket holding `bucket`.
pub fn key_of(bucket: &Rollup) -> Vec<u8> {
    zone_time_key(&bucket.location.site, &bucket.location.zone, bucket.start)
}

/// Length of the `site 0x00 zone 0x00 start` part of a roll-up key; `None` if it is not one.
pub fn zone_key_len(key: &[u8]) -> Option<usize> {
    let site_end = key.iter().position(|&b| b == 0)?;
    let zone_end = site_end + 1 + key.get(site_end + 1..)?.iter().position(|&b| b == 0)?;
    let end = zone_end + 1 + 8;
    (key.len() >= end).then_some(end)
}

/// True if `key` is a zone value's key (nothing after the bucket start).
pub fn is_zone_key(key: &[u8]) -> bool {
    zone_key_len(key) == Some(key.len())
}

/// Groups buckets of one level by zone bucket, merging buckets of the same sensor.
pub fn group(buckets: impl IntoIterator<Item = Rollup>) -> BTreeMap<Vec<u8>, ZoneBucket> {
    let mut out: BTreeMap<Vec<u8>, ZoneBucket> = BTreeMap::new();
    for bucket in buckets {
        let zone = out.entry(key_of(&bucket)).or_default();
        match zone.entry(sensor_key(&bucket)) {
            std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().merge(&bucket),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(bucket);
            }
        }
    }
    out
}

fn push_name(out: &mut Vec<u8>, name: &str, what: &'static str) -> Result<(), CodecError> {
    let len = u16::try_from(name.len()).map_err(|_| match what {
        "row" => CodecError::RowTooLong(name.len()),
        _ => CodecError::NameTooLong(what, name.len()),
    })?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    Ok(())
}

/// The stored value of one zone bucket in [`FORMAT_V2`]; its key is [`key_of`] any of its
/// roll-ups (callers group them with [`group`]).
pub fn encode(bucket: &ZoneBucket) -> Result<Vec<u8>, CodecError> {
    let entries = u32::try_from(bucket.len()).map_err(|_| CodecError::NameTooLong("zone", 0))?;
    let mut out = Vec::with_capacity(5 + bucket.len() * 100);
    out.push(FORMAT_V2);
    out.extend_from_slice(&entries.to_le_bytes());
    for b in bucket.values() {
        let mut flags = 0;
        if b.location.row.is_some() {
            flags |= ROW_PRESENT;
        }
        if b.location.rack.is_some() {
            flags |= RACK_PRESENT;
        }
        out.push(flags);
        let kind = b.kind.as_str().as_bytes();
        // Kind names are short ASCII identifiers (`as_str` is a fixed table).
        out.push(kind.len() as u8);
        out.extend_from_slice(kind);
        if let Some(rack) = &b.location.rack {
            push_name(&mut out, rack, "rack")?;
        }
        push_name(&mut out, &b.sensor, "sensor")?;
        if let Some(row) = &b.location.row {
            push_name(&mut out, row, "row")?;
        }
        push_numbers(&mut out, b);
    }
    Ok(out)
}

fn name<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], CodecError> {
    let len = u16::from_le_bytes(r.array()?);
    r.take(usize::from(len))
}

/// Appends to `out`, in stored order, the roll-ups of the zone value `value` under `key`
/// whose rack and sensor `keep` accepts (the others are skipped without allocating).
pub fn decode_into(
    key: &[u8],
    value: &[u8],
    keep: impl Fn(Option<&str>, &str) -> bool,
    out: &mut Vec<Rollup>,
) -> Result<(), CodecError> {
    let start = key_time(key).ok_or(CodecError::Key)?;
    let site_end = key.iter().position(|&b| b == 0).ok_or(CodecError::Key)?;
    let zone_end = zone_key_len(key).ok_or(CodecError::Key)? - 9;
    let site = text(&key[..site_end], "site")?;
    let zone = text(&key[site_end + 1..zone_end], "zone")?;
    let mut r = Reader {
        rest: value,
        len: value.len(),
    };
    match r.array::<1>()? {
        [FORMAT_V2] => {}
        [other] => return Err(CodecError::Tag(other)),
    }
    let entries = u32::from_le_bytes(r.array()?);
    for _ in 0..entries {
        let [flags, kind_len] = r.array()?;
        let kind_name = std::str::from_utf8(r.take(usize::from(kind_len))?)
            .map_err(|_| CodecError::Utf8("kind"))?;
        let rack = if flags & RACK_PRESENT != 0 {
            Some(std::str::from_utf8(name(&mut r)?).map_err(|_| CodecError::Utf8("rack"))?)
        } else {
            None
        };
        let sensor = std::str::from_utf8(name(&mut r)?).map_err(|_| CodecError::Utf8("sensor"))?;
        let row = if flags & ROW_PRESENT != 0 {
            Some(name(&mut r)?)
        } else {
            None
        };
        let numbers = r.take(8 * 7)?;
        if !keep(rack, sensor) {
            continue;
        }
        let mut n = Reader {
            rest: numbers,
            len: value.len(),
        };
        let kind = kind_of(kind_name)?;
        let location = Location {
            site: site.clone(),
            zone: zone.clone(),
            row: row.map(|row| text(row, "row")).transpose()?,
            rack: rack.map(str::to_string),
        };
        out.push(read_bucket(
            &mut n,
            sensor.to_string(),
            kind,
            location,
            start,
        )?);
    }
    Ok(())
}

/// The zone bucket stored as `value` under `key` (what ingest merges new summaries into).
pub fn decode_bucket(key: &[u8], value: &[u8]) -> Result<ZoneBucket, CodecError> {
    let mut rollups = Vec::new();
    decode_into(key, value, |_, _| true, &mut rollups)?;
    Ok(rollups.into_iter().map(|b| (sensor_key(&b), b)).collect())
}

/// Every roll-up stored under `key` with `value`, whatever its shape: a zone value, or a
/// per-sensor bucket in either of [`super::codec`]'s formats.
pub fn decode_any(key: &[u8], value: &[u8]) -> Result<Vec<Rollup>, CodecError> {
    if is_zone_key(key) {
        let mut out = Vec::new();
        decode_into(key, value, |_, _| true, &mut out)?;
        Ok(out)
    } else {
        Ok(vec![super::codec::decode(key, value)?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldaisle_core::{SensorKind, Timestamp};

    fn bucket(rack: Option<&str>, sensor: &str, row: Option<&str>, value: f64) -> Rollup {
        Rollup {
            sensor: sensor.into(),
            kind: SensorKind::InletTemp,
            location: Location {
                site: "par1".into(),
                zone: "hall-a".into(),
                row: row.map(str::to_string),
                rack: rack.map(str::to_string),
            },
            start: Timestamp(-86_400_000),
            count: 60,
            sum: value * 60.0,
            min: value - 1.0,
            max: value + 1.0,
            last: value,
            last_at: Timestamp(1_795_996_799_000),
            summaries: 1,
        }
    }

    fn sample() -> Vec<Rollup> {
        vec![
            bucket(Some("R2"), "b", Some("row-é"), 20.0),
            bucket(Some("R1"), "z", None, 21.0),
            bucket(None, "free", Some("A"), 22.0),
            bucket(Some("R10"), "a", None, 23.0),
            bucket(Some("R1"), "z", None, 25.0),
        ]
    }

    #[test]
    fn a_zone_value_decodes_in_the_order_of_per_sensor_keys() {
        let grouped = group(sample());
        assert_eq!(grouped.len(), 1);
        let (key, zone) = grouped.iter().next().expect("one zone bucket");
        assert!(is_zone_key(key));
        let value = encode(zone).expect("encode");
        assert_eq!(value[0], FORMAT_V2);
        let decoded = decode_any(key, &value).expect("decode");
        // The two R1/z buckets merged into one.
        assert_eq!(decoded.len(), 4);
        assert_eq!((decoded[1].count, decoded[1].max), (120, 26.0));
        // What per-sensor keys held: one merged bucket per key, in key order.
        let mut per_sensor: BTreeMap<Vec<u8>, Rollup> = BTreeMap::new();
        for b in sample() {
            match per_sensor.entry(b.key()) {
                std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().merge(&b),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(b);
                }
            }
        }
        assert_eq!(decoded, per_sensor.into_values().collect::<Vec<_>>());
        assert_eq!(decode_bucket(key, &value).expect("bucket"), *zone);
    }

    #[test]
    fn filters_pick_sensors_without_decoding_the_rest() {
        let grouped = group(sample());
        let (key, zone) = grouped.iter().next().expect("one zone bucket");
        let value = encode(zone).expect("encode");
        let mut out = Vec::new();
        decode_into(key, &value, |rack, _| rack == Some("R1"), &mut out).expect("decode");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].sensor, "z");
    }

    #[test]
    fn per_sensor_keys_extend_the_zone_key_and_are_not_zone_keys() {
        let b = bucket(Some("R1"), "t1", None, 20.0);
        assert!(b.key().starts_with(&key_of(&b)));
        assert!(b.key() > key_of(&b));
        assert!(!is_zone_key(&b.key()));
        assert_eq!(zone_key_len(&b.key()), Some(key_of(&b).len()));
        assert_eq!(zone_key_len(b"no-separators"), None);
        let value = super::super::codec::encode(&b).expect("encode");
        assert_eq!(decode_any(&b.key(), &value).expect("decode"), vec![b]);
    }

    #[test]
    fn damaged_zone_values_are_errors_not_panics() {
        let grouped = group(sample());
        let (key, zone) = grouped.iter().next().expect("one zone bucket");
        let value = encode(zone).expect("encode");
        for cut in 0..value.len() {
            assert!(decode_any(key, &value[..cut]).is_err(), "cut at {cut}");
        }
        assert!(matches!(
            decode_any(key, &[0x7f, 0, 0, 0, 0]),
            Err(CodecError::Tag(0x7f))
        ));
        let long = "s".repeat(70_000);
        let b = bucket(None, &long, None, 1.0);
        assert!(matches!(
            encode(&group([b]).into_values().next().expect("one")),
            Err(CodecError::NameTooLong("sensor", 70_000))
        ));
    }
}
