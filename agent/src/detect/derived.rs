//! Derived signals: values computed from two sensors (dew point from temperature and relative
//! humidity of the same rack; ΔT between a cooler's return and supply air). The derived value
//! then goes through the ordinary detectors of its kind.

use coldaisle_core::Timestamp;
use std::time::Duration;

/// Dew point (°C) from air temperature (°C) and relative humidity (%RH), Magnus formula with
/// the Alduchov–Eskridge constants (error < 0.4 °C for −40..50 °C). `None` when the humidity
/// is not in (0, 100].
pub fn dew_point(temp_c: f64, rh: f64) -> Option<f64> {
    if !(rh > 0.0 && rh <= 100.0 && temp_c.is_finite()) {
        return None;
    }
    const A: f64 = 17.625;
    const B: f64 = 243.04;
    let gamma = (rh / 100.0).ln() + A * temp_c / (B + temp_c);
    Some(B * gamma / (A - gamma))
}

/// The last valid value of one member of a pair, with its time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LastValue(pub Option<(Timestamp, f64)>);

impl LastValue {
    /// The value if it is at most `max_age` older than `now`.
    pub fn fresh(&self, now: Timestamp, max_age: Duration) -> Option<f64> {
        self.0
            .filter(|&(ts, _)| now.since(ts) <= max_age && ts <= now.plus(max_age))
            .map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dew_point_matches_reference_values() {
        // Reference: 25 °C / 50 %RH → 13.9 °C; 20 °C / 100 %RH → 20 °C; 30 °C / 80 % → 26.2.
        let close = |a: f64, b: f64| (a - b).abs() < 0.15;
        assert!(close(dew_point(25.0, 50.0).unwrap_or(f64::NAN), 13.86));
        assert!(close(dew_point(20.0, 100.0).unwrap_or(f64::NAN), 20.0));
        assert!(close(dew_point(30.0, 80.0).unwrap_or(f64::NAN), 26.17));
        assert_eq!(dew_point(25.0, 0.0), None);
        assert_eq!(dew_point(25.0, 120.0), None);
    }

    #[test]
    fn stale_members_are_not_combined() {
        let v = LastValue(Some((Timestamp(0), 21.0)));
        assert_eq!(
            v.fresh(Timestamp(60_000), Duration::from_secs(60)),
            Some(21.0)
        );
        assert_eq!(v.fresh(Timestamp(61_000), Duration::from_secs(60)), None);
    }
}
