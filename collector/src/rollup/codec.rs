//! The stored form of one roll-up bucket: a compact, versioned binary value beside its key.
//! Pure: bytes in, [`Rollup`] out, no I/O.
//!
//! The key ([`Rollup::key`]) already holds site, zone, bucket start, rack and sensor, so the
//! value stores only what the key does not: the kind, the row, whether the rack is named, and
//! the numbers. Every location string is stored once per bucket (in its key), and decoding a
//! bucket is a few slices and fixed-width reads instead of a JSON parse with five strings.
//!
//! Layout of [`FORMAT_V1`] (little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 1 | format tag `0x01` |
//! | 1 | flags: bit 0 the row is present, bit 1 the rack is present (its name is in the key) |
//! | 1 + n | kind: length `n`, then its snake_case name ([`SensorKind::as_str`]) |
//! | 2 + n | row, when present: length `n` (u16), then UTF-8 |
//! | 8 × 7 | count (u64), sum, min, max, last (f64), last_at (i64 ms), summaries (u64) |
//!
//! Invariants:
//! - A value is read by its first byte: `{` is a bucket written as JSON by collectors before
//!   this format (still decoded, never rewritten except when ingest merges into it), `0x01`
//!   this layout; anything else is an error naming the tag. A later layout takes a new tag.
//! - The kind is stored by name, not by position, so adding or reordering [`SensorKind`]
//!   variants never changes what a stored byte means.

use super::{key_time, Rollup};
use coldaisle_core::{Location, SensorKind, Timestamp};
use serde::Deserialize;

/// Tag of the binary layout described in the module documentation.
pub const FORMAT_V1: u8 = 0x01;

/// First byte of a bucket stored as JSON (the format before [`FORMAT_V1`]).
const LEGACY_JSON: u8 = b'{';

const ROW_PRESENT: u8 = 1;
const RACK_PRESENT: u8 = 2;

/// Why a stored bucket does not decode.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The key is not a roll-up key (see [`Rollup::key`]).
    #[error("not a roll-up key")]
    Key,
    /// The value is empty.
    #[error("empty value")]
    Empty,
    /// The first byte names no known format.
    #[error("unknown bucket format tag {0:#04x}")]
    Tag(u8),
    /// The value ends before its last field.
    #[error("bucket value truncated ({0} bytes)")]
    Truncated(usize),
    /// A name is not UTF-8.
    #[error("bucket {0} is not UTF-8")]
    Utf8(&'static str),
    /// The kind is not a known sensor kind.
    #[error("unknown sensor kind {0:?}")]
    Kind(String),
    /// A row longer than the layout can hold (65,535 bytes).
    #[error("row name of {0} bytes is too long to store")]
    RowTooLong(usize),
    /// A rack or sensor name longer than the zone layout can hold (65,535 bytes).
    #[error("{0} name of {1} bytes is too long to store")]
    NameTooLong(&'static str, usize),
    /// A legacy JSON value that does not parse.
    #[error("legacy JSON bucket: {0}")]
    Json(#[from] serde_json::Error),
}

/// The stored value of `bucket` in [`FORMAT_V1`]; its key is [`Rollup::key`].
pub fn encode(bucket: &Rollup) -> Result<Vec<u8>, CodecError> {
    let kind = bucket.kind.as_str().as_bytes();
    let row = bucket.location.row.as_deref().map(str::as_bytes);
    let row_len = row
        .map(|r| u16::try_from(r.len()).map_err(|_| CodecError::RowTooLong(r.len())))
        .transpose()?;
    let mut out = Vec::with_capacity(3 + kind.len() + 2 + row.map_or(0, <[u8]>::len) + 56);
    out.push(FORMAT_V1);
    let mut flags = 0;
    if row.is_some() {
        flags |= ROW_PRESENT;
    }
    if bucket.location.rack.is_some() {
        flags |= RACK_PRESENT;
    }
    out.push(flags);
    // Kind names are short ASCII identifiers (`as_str` is a fixed table).
    out.push(kind.len() as u8);
    out.extend_from_slice(kind);
    if let (Some(row), Some(len)) = (row, row_len) {
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(row);
    }
    push_numbers(&mut out, bucket);
    Ok(out)
}

/// Appends a bucket's numbers in their stored order (the last row of the layout table), the
/// same in this layout and in a zone value's entries.
pub(super) fn push_numbers(out: &mut Vec<u8>, bucket: &Rollup) {
    out.extend_from_slice(&bucket.count.to_le_bytes());
    for v in [bucket.sum, bucket.min, bucket.max, bucket.last] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&bucket.last_at.0.to_le_bytes());
    out.extend_from_slice(&bucket.summaries.to_le_bytes());
}

/// The bucket of `sensor` (`kind`, at `location`) starting at `start`, its numbers read from
/// `r` in the order [`push_numbers`] writes them.
pub(super) fn read_bucket(
    r: &mut Reader<'_>,
    sensor: String,
    kind: SensorKind,
    location: Location,
    start: Timestamp,
) -> Result<Rollup, CodecError> {
    Ok(Rollup {
        sensor,
        kind,
        location,
        start,
        count: r.u64()?,
        sum: r.f64()?,
        min: r.f64()?,
        max: r.f64()?,
        last: r.f64()?,
        last_at: Timestamp(i64::from_le_bytes(r.array()?)),
        summaries: r.u64()?,
    })
}

/// The bucket stored under `key` with `value`, in either format (see the invariants).
pub fn decode(key: &[u8], value: &[u8]) -> Result<Rollup, CodecError> {
    match value.first() {
        None => Err(CodecError::Empty),
        Some(&LEGACY_JSON) => Ok(serde_json::from_slice(value)?),
        Some(&FORMAT_V1) => decode_v1(key, value),
        Some(&other) => Err(CodecError::Tag(other)),
    }
}

/// The parts of a roll-up key.
struct KeyParts<'a> {
    site: &'a [u8],
    zone: &'a [u8],
    start: Timestamp,
    /// Empty when the bucket has no rack.
    rack: &'a [u8],
    sensor: &'a [u8],
}

fn split_key(key: &[u8]) -> Option<KeyParts<'_>> {
    let start = key_time(key)?;
    let site_end = key.iter().position(|&b| b == 0)?;
    let zone_end = site_end + 1 + key.get(site_end + 1..)?.iter().position(|&b| b == 0)?;
    let after_time = key.get(zone_end + 9..)?;
    let rack_end = after_time.iter().position(|&b| b == 0)?;
    Some(KeyParts {
        site: &key[..site_end],
        zone: &key[site_end + 1..zone_end],
        start,
        rack: &after_time[..rack_end],
        sensor: &after_time[rack_end + 1..],
    })
}

/// Reads fixed-width and length-prefixed fields off the front of a value.
pub(super) struct Reader<'a> {
    pub(super) rest: &'a [u8],
    pub(super) len: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.rest.len() < n {
            return Err(CodecError::Truncated(self.len));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(super) fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(super) fn f64(&mut self) -> Result<f64, CodecError> {
        Ok(f64::from_le_bytes(self.array()?))
    }
}

/// The sensor kind stored under its snake_case name.
pub(super) fn kind_of(name: &str) -> Result<SensorKind, CodecError> {
    SensorKind::deserialize(serde::de::value::BorrowedStrDeserializer::<
        serde::de::value::Error,
    >::new(name))
    .map_err(|_| CodecError::Kind(name.to_string()))
}

pub(super) fn text(bytes: &[u8], what: &'static str) -> Result<String, CodecError> {
    std::str::from_utf8(bytes)
        .map(str::to_string)
        .map_err(|_| CodecError::Utf8(what))
}

fn decode_v1(key: &[u8], value: &[u8]) -> Result<Rollup, CodecError> {
    let parts = split_key(key).ok_or(CodecError::Key)?;
    let mut r = Reader {
        rest: value,
        len: value.len(),
    };
    let [_tag, flags] = r.array()?;
    let [kind_len] = r.array()?;
    let kind_name = std::str::from_utf8(r.take(usize::from(kind_len))?)
        .map_err(|_| CodecError::Utf8("kind"))?;
    let kind = kind_of(kind_name)?;
    let row = if flags & ROW_PRESENT != 0 {
        let len = u16::from_le_bytes(r.array()?);
        Some(text(r.take(usize::from(len))?, "row")?)
    } else {
        None
    };
    let rack = if flags & RACK_PRESENT != 0 {
        Some(text(parts.rack, "rack")?)
    } else {
        None
    };
    let sensor = text(parts.sensor, "sensor")?;
    let location = Location {
        site: text(parts.site, "site")?,
        zone: text(parts.zone, "zone")?,
        row,
        rack,
    };
    read_bucket(&mut r, sensor, kind, location, parts.start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(row: Option<&str>, rack: Option<&str>, kind: SensorKind) -> Rollup {
        Rollup {
            sensor: "r07-inlet-top".into(),
            kind,
            location: Location {
                site: "par1".into(),
                zone: "hall-a".into(),
                row: row.map(str::to_string),
                rack: rack.map(str::to_string),
            },
            start: Timestamp(-86_400_000),
            count: 1440,
            sum: 31_234.5,
            min: -3.25,
            max: f64::MAX,
            last: 21.5,
            last_at: Timestamp(1_795_996_799_000),
            summaries: 24,
        }
    }

    #[test]
    fn binary_round_trip_keeps_every_field() {
        for (row, rack) in [
            (Some("row-é"), Some("R07")),
            (None, Some("R07")),
            (Some("B"), None),
            (None, None),
        ] {
            for kind in [SensorKind::InletTemp, SensorKind::RackCurrent] {
                let b = bucket(row, rack, kind);
                let value = encode(&b).expect("encode");
                assert_eq!(value[0], FORMAT_V1);
                assert_eq!(decode(&b.key(), &value).expect("decode"), b);
            }
        }
    }

    #[test]
    fn the_value_holds_no_location_string_of_the_key() {
        let b = bucket(Some("A"), Some("R07"), SensorKind::InletTemp);
        let value = encode(&b).expect("encode");
        let json = serde_json::to_vec(&b).expect("json");
        assert!(
            value.len() * 3 < json.len(),
            "{} vs {}",
            value.len(),
            json.len()
        );
        for needle in ["par1", "hall-a", "R07", "r07-inlet-top"] {
            assert!(
                !value.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} is stored in the value"
            );
        }
    }

    #[test]
    fn legacy_json_buckets_still_decode() {
        // A value exactly as collectors before the binary format wrote it.
        let b = bucket(Some("A"), Some("R07"), SensorKind::Humidity);
        let legacy = serde_json::to_vec(&b).expect("json");
        assert_eq!(decode(&b.key(), &legacy).expect("decode"), b);
    }

    #[test]
    fn damaged_values_are_errors_not_panics() {
        let b = bucket(Some("A"), Some("R07"), SensorKind::InletTemp);
        let value = encode(&b).expect("encode");
        let key = b.key();
        for cut in 0..value.len() {
            assert!(decode(&key, &value[..cut]).is_err(), "cut at {cut}");
        }
        assert!(matches!(
            decode(&key, &[0x7f, 0]),
            Err(CodecError::Tag(0x7f))
        ));
        assert!(matches!(
            decode(b"no-separators", &value),
            Err(CodecError::Key)
        ));
        let mut unknown_kind = value.clone();
        unknown_kind[3] = b'X';
        assert!(matches!(
            decode(&key, &unknown_kind),
            Err(CodecError::Kind(_))
        ));
        assert!(matches!(
            decode(&key, b"{\"sensor\":"),
            Err(CodecError::Json(_))
        ));
    }

    #[test]
    fn overlong_rows_are_refused() {
        let long = "r".repeat(70_000);
        let b = bucket(Some(&long), None, SensorKind::InletTemp);
        assert!(matches!(encode(&b), Err(CodecError::RowTooLong(70_000))));
    }
}
