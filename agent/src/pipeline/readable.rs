//! Events written for people: the precision a sensor's value deserves, and one log line per
//! transition (`z1-r02-inlet raised by threshold: 31.4 °C > 27.0`) with structured fields
//! beside it. Pure apart from [`log_transitions`], which only emits tracing events.

use coldaisle_config::agent::SourceUnit;
use coldaisle_core::wire::Payload;
use coldaisle_core::{EventState, SensorEvent, ZoneEvent};

/// Decimals of a derived signal (dew point, cooler ΔT, inlet over supply).
pub const DERIVED_DECIMALS: u32 = 1;
/// The most decimals any value keeps.
const MAX_DECIMALS: u32 = 4;

/// Decimals a sensor's normalised value carries: those of its scale (`0.1` → 1, `0.01` → 2,
/// `1` → 0), one more when it is converted from °F (a tenth of a °F is 0.06 °C).
pub fn precision(scale: f64, unit: SourceUnit) -> u32 {
    let mut decimals = 0;
    let mut s = scale.abs();
    while decimals < MAX_DECIMALS && s.is_finite() && s > 0.0 && (s - s.round()).abs() > 1e-9 {
        s *= 10.0;
        decimals += 1;
    }
    match unit {
        SourceUnit::C => decimals,
        SourceUnit::F => (decimals + 1).min(MAX_DECIMALS),
    }
}

/// `value` rounded to `decimals` (no `31.400000000000002`); non-finite values pass through.
pub fn round_to(value: f64, decimals: u32) -> f64 {
    if !value.is_finite() {
        return value;
    }
    let factor = 10f64.powi(i32::try_from(decimals.min(MAX_DECIMALS)).unwrap_or(4));
    let rounded = (value * factor).round() / factor;
    // Avoid printing `-0`.
    if rounded == 0.0 {
        0.0
    } else {
        rounded
    }
}

/// The sentence for a sensor event.
pub fn sensor_line(e: &SensorEvent) -> String {
    let unit = e.kind.unit();
    let value = if unit.is_empty() {
        format!("{}", e.value)
    } else {
        format!("{} {unit}", e.value)
    };
    if e.is_forecast() {
        return forecast_line(e, &value);
    }
    match (e.state, e.limit) {
        _ if e.detector == "stale" && e.state == EventState::Raised => {
            format!(
                "{} raised by stale: no reading since {}",
                e.sensor, e.first_ts
            )
        }
        (EventState::Raised, Some(limit)) => {
            let op = if e.value < limit { "<" } else { ">" };
            format!(
                "{} raised by {}: {value} {op} {limit}",
                e.sensor, e.detector
            )
        }
        (EventState::Raised, None) => format!("{} raised by {}: {value}", e.sensor, e.detector),
        (EventState::Cleared, Some(limit)) => format!(
            "{} cleared by {}: {value}, back within {limit}",
            e.sensor, e.detector
        ),
        (EventState::Cleared, None) => format!("{} cleared by {}: {value}", e.sensor, e.detector),
    }
}

/// The sentence for a forecast: `z1-r02-inlet forecast: 25.1 °C, trend reaches 27 at
/// 2026-12-07T10:20:00Z (in 18m)`.
fn forecast_line(e: &SensorEvent, value: &str) -> String {
    let limit = e.limit.map(|l| format!(" {l}")).unwrap_or_default();
    match (e.state, e.expected_crossing) {
        (EventState::Raised, Some(at)) => format!(
            "{} forecast: {value}, trend reaches{limit} at {at} (in {})",
            e.sensor,
            humantime::format_duration(std::time::Duration::from_secs(at.since(e.ts).as_secs()))
        ),
        (EventState::Raised, None) => {
            format!("{} forecast: {value}, trend reaches{limit}", e.sensor)
        }
        (EventState::Cleared, _) => format!(
            "{} forecast cleared: {value}, the trend no longer reaches{limit} soon",
            e.sensor
        ),
    }
}

/// The sentence for a zone event.
pub fn zone_line(e: &ZoneEvent) -> String {
    let evidence: Vec<String> = e
        .evidence
        .iter()
        .map(|v| format!("{} {}", v.sensor, v.value))
        .collect();
    let state = state_name(e.state);
    format!(
        "zone {} {} {state}: {}",
        e.zone,
        e.category.as_str(),
        evidence.join(", ")
    )
}

fn state_name(state: EventState) -> &'static str {
    match state {
        EventState::Raised => "raised",
        EventState::Cleared => "cleared",
    }
}

/// Logs every raise and clear in `payloads` at info level: the sentence as the message and the
/// event's fields beside it.
pub fn log_transitions(payloads: &[Payload]) {
    for p in payloads {
        match p {
            Payload::SensorEvent(e) => tracing::info!(
                sensor = %e.sensor,
                detector = %e.detector,
                state = state_name(e.state),
                severity = e.severity.as_str(),
                category = e.category.as_str(),
                value = e.value,
                limit = e.limit,
                expected_crossing = e.expected_crossing.map(|t| t.to_rfc3339()),
                zone = %e.location.zone,
                "{}",
                sensor_line(e)
            ),
            Payload::ZoneEvent(e) => tracing::info!(
                zone = %e.zone,
                category = e.category.as_str(),
                state = state_name(e.state),
                severity = e.severity.as_str(),
                sensors = e.evidence.len(),
                "{}",
                zone_line(e)
            ),
            Payload::DeviceEvent(e) => match e.state {
                EventState::Raised => tracing::info!(
                    device = %e.device,
                    state = state_name(e.state),
                    reason = %e.reason,
                    "device {} unreachable: {}",
                    e.device,
                    e.reason
                ),
                EventState::Cleared => tracing::info!(
                    device = %e.device,
                    state = state_name(e.state),
                    "device {} answers again",
                    e.device
                ),
            },
            Payload::ReadingSummary(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldaisle_core::{Category, Location, SensorKind, Severity, Timestamp};

    #[test]
    fn precision_follows_the_scale_and_the_unit() {
        assert_eq!(precision(0.1, SourceUnit::C), 1);
        assert_eq!(precision(0.01, SourceUnit::C), 2);
        assert_eq!(precision(1.0, SourceUnit::C), 0);
        assert_eq!(precision(0.5, SourceUnit::C), 1);
        assert_eq!(precision(0.1, SourceUnit::F), 2);
        assert_eq!(precision(1e-5, SourceUnit::C), 4, "at most four decimals");
    }

    #[test]
    fn rounding_removes_float_noise() {
        let noisy = 314.0 * 0.1 + 0.0;
        assert_eq!(format!("{}", round_to(noisy, 1)), "31.4");
        assert_eq!(format!("{}", round_to(7.899999999999999, 2)), "7.9");
        assert_eq!(format!("{}", round_to(-0.04, 1)), "0");
        assert!(round_to(f64::NAN, 1).is_nan());
    }

    fn event(state: EventState, detector: &str, value: f64, limit: Option<f64>) -> SensorEvent {
        SensorEvent {
            sensor: "z1-r02-inlet".into(),
            kind: SensorKind::InletTemp,
            location: Location {
                site: "s1".into(),
                zone: "Z1".into(),
                row: None,
                rack: None,
            },
            category: Category::Thermal,
            detector: detector.into(),
            state,
            severity: Severity::Warning,
            value,
            limit,
            first_ts: Timestamp(0),
            ts: Timestamp(60_000),
            expected_crossing: None,
        }
    }

    #[test]
    fn lines_read_as_sentences() {
        assert_eq!(
            sensor_line(&event(EventState::Raised, "threshold", 31.4, Some(27.0))),
            "z1-r02-inlet raised by threshold: 31.4 °C > 27"
        );
        assert_eq!(
            sensor_line(&event(EventState::Raised, "threshold", 16.5, Some(18.0))),
            "z1-r02-inlet raised by threshold: 16.5 °C < 18"
        );
        assert_eq!(
            sensor_line(&event(EventState::Cleared, "threshold", 25.9, Some(26.0))),
            "z1-r02-inlet cleared by threshold: 25.9 °C, back within 26"
        );
        assert_eq!(
            sensor_line(&event(EventState::Raised, "stale", 0.0, None)),
            "z1-r02-inlet raised by stale: no reading since 1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn a_forecast_says_when_the_trend_reaches_the_limit() {
        let mut e = event(EventState::Raised, "forecast", 25.1, Some(27.0));
        e.expected_crossing = Some(Timestamp(60_000 + 18 * 60_000));
        assert_eq!(
            sensor_line(&e),
            "z1-r02-inlet forecast: 25.1 °C, trend reaches 27 at 1970-01-01T00:19:00.000Z (in 18m)"
        );
        let cleared = event(EventState::Cleared, "forecast", 24.0, Some(27.0));
        assert_eq!(
            sensor_line(&cleared),
            "z1-r02-inlet forecast cleared: 24 °C, the trend no longer reaches 27 soon"
        );
    }
}
