//! Event time: milliseconds since the Unix epoch, UTC.
//!
//! Detection and problem rules run on event time (the sample's timestamp), never on the wall
//! clock at the moment of processing; the wall clock is read only at the edges ([`Timestamp::now`]).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time as milliseconds since the Unix epoch (UTC). Serialised as an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The wall clock now. Only edges (pollers, ingest) call this; pure logic takes time as input.
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// Converts a [`SystemTime`]; times before the epoch become negative milliseconds.
    pub fn from_system_time(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Err(e) => Timestamp(-i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX)),
        }
    }

    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// This time plus a duration (saturating).
    pub fn plus(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(duration_millis(d)))
    }

    /// This time minus a duration (saturating).
    pub fn minus(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_sub(duration_millis(d)))
    }

    /// Time elapsed from `earlier` to `self`; zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    /// RFC 3339 rendering with millisecond precision, e.g. `2026-11-25T12:00:00.000Z`.
    pub fn to_rfc3339(self) -> String {
        let t = if self.0 >= 0 {
            UNIX_EPOCH + Duration::from_millis(self.0.unsigned_abs())
        } else {
            UNIX_EPOCH - Duration::from_millis(self.0.unsigned_abs())
        };
        humantime::format_rfc3339_millis(t).to_string()
    }

    /// Parses RFC 3339 (`2026-11-25T12:00:00Z`) or `YYYY-MM-DD HH:MM:SS` (taken as UTC).
    pub fn parse(text: &str) -> Result<Self, humantime::TimestampError> {
        let trimmed = text.trim();
        humantime::parse_rfc3339_weak(trimmed).map(Self::from_system_time)
    }
}

fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let t = Timestamp(1_764_072_000_123);
        let text = t.to_rfc3339();
        assert_eq!(text, "2025-11-25T12:00:00.123Z");
        assert_eq!(Timestamp::parse(&text).ok(), Some(t));
        assert_eq!(
            Timestamp::parse("2025-11-25 12:00:00").ok(),
            Some(Timestamp(1_764_072_000_000))
        );
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp(1_000);
        assert_eq!(t.plus(Duration::from_secs(1)), Timestamp(2_000));
        assert_eq!(t.since(Timestamp(5_000)), Duration::ZERO);
        assert_eq!(
            Timestamp(i64::MAX).plus(Duration::from_secs(1)),
            Timestamp(i64::MAX)
        );
    }
}
