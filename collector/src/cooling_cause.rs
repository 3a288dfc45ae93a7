//! Probable cause read from the readings (issue 15, item 5): what the zone's cooling units and
//! rack inlets *measured* around an incident, not only which of them raised an event.
//!
//! The event rules of [`crate::cause`] see a cooling unit only when it raised; a unit whose
//! supply air climbed 6 °C without crossing a limit left the incident looking like airflow.
//! This module compares each sensor's level before the incident with its peak around the
//! incident's opening, from the reading summaries the agents send:
//!
//! - **baseline**: the mean of the sensor's summaries ending in `[opened − before, opened −
//!   around)`;
//! - **peak**: the highest `max` of its summaries ending in `[opened − around, opened + around]`;
//! - **rise** = peak − baseline. A sensor *rose* at ≥ [`RISE`] °C, held *steady* below
//!   [`STEADY`] °C.
//!
//! Rules over the sensors not named by a sensor-fault event (stuck, impossible, stale, device),
//! first match wins:
//! 1. no inlet rose → no opinion (`None`);
//! 2. a cooling unit's **supply air rose** with the inlets, or its ΔT (return − supply) fell by
//!    [`RISE`] or more, or its cooling state / fan fell to off → **cooling capacity**;
//! 3. the inlets of **one rack only** rose → **that rack** (its own density);
//! 4. inlets of two or more racks rose while the **supply held steady** → **airflow or
//!    containment**;
//! 5. otherwise (no supply readings to judge by) → no opinion.
//!
//! Every evidence line quotes the values and the times they come from. [`merge`] puts this
//! readings cause over the event cause (a sensor-fault verdict of the events stays).
//!
//! Pure: summaries, events and times in, a cause out; no clock, no store. [`problem`] (pure)
//! votes over a problem's incidents; [`read`] is the read boundary the API routes call: it
//! takes the readings from the minute roll-ups or, for older incidents, the hour roll-ups.

use crate::cause::{CauseKind, ProbableCause};
use crate::model::StoredEvent;
use coldaisle_core::wire::Payload;
use coldaisle_core::{Category, ReadingSummary, SensorKind, Timestamp};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A rise of at least this many °C counts as rising (also a ΔT drop of this size).
pub const RISE: f64 = 1.5;
/// A rise below this many °C counts as steady.
pub const STEADY: f64 = 1.0;

/// Detector names of sensor faults (their sensors' readings are not trusted).
const FAULT_DETECTORS: [&str; 4] = ["stuck", "impossible_value", "stale", "fault"];

/// The periods compared around an incident's opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// How far back the baseline reaches.
    pub before: Duration,
    /// Half-width of the period around the opening that gives the peak (the baseline ends
    /// where it starts).
    pub around: Duration,
}

impl Default for Windows {
    /// Baseline over the hour before, peak within 15 minutes of the opening.
    fn default() -> Self {
        Windows {
            before: Duration::from_secs(3600),
            around: Duration::from_secs(15 * 60),
        }
    }
}

/// One sensor's level before and around the incident.
#[derive(Debug, Clone, PartialEq)]
struct Change {
    sensor: String,
    kind: SensorKind,
    rack: Option<String>,
    /// Mean before, and the span of the summaries it comes from.
    baseline: f64,
    baseline_span: (Timestamp, Timestamp),
    /// Highest value around the opening, and the end of the summary that held it.
    peak: f64,
    peak_at: Timestamp,
    /// Lowest value around the opening (for ΔT, fans and cooling state, which fall).
    low: f64,
    low_at: Timestamp,
}

impl Change {
    /// The unit with its leading space (none for unitless kinds).
    fn unit(&self) -> String {
        match self.kind.unit() {
            "" => String::new(),
            u => format!(" {u}"),
        }
    }

    fn rise(&self) -> f64 {
        self.peak - self.baseline
    }

    fn quote(&self) -> String {
        let unit = self.unit();
        let rack = self
            .rack
            .as_deref()
            .map(|r| format!(" rack {r}"))
            .unwrap_or_default();
        format!(
            "{} {}{rack}: {:.1}{unit} on average {}–{}, {:.1}{unit} at {} ({:+.1})",
            self.kind.as_str(),
            self.sensor,
            self.baseline,
            self.baseline_span.0.to_rfc3339(),
            self.baseline_span.1.to_rfc3339(),
            self.peak,
            self.peak_at.to_rfc3339(),
            self.rise()
        )
    }

    fn quote_fall(&self) -> String {
        let unit = self.unit();
        format!(
            "{} {}: {:.1}{unit} on average {}–{}, down to {:.1}{unit} at {}",
            self.kind.as_str(),
            self.sensor,
            self.baseline,
            self.baseline_span.0.to_rfc3339(),
            self.baseline_span.1.to_rfc3339(),
            self.low,
            self.low_at.to_rfc3339()
        )
    }
}

/// Each trusted sensor's change around `opened` (sensors with too little data left out).
fn changes(
    summaries: &[&ReadingSummary],
    opened: Timestamp,
    windows: Windows,
    faulty: &BTreeSet<String>,
) -> Vec<Change> {
    let base_from = opened.minus(windows.before);
    let peak_from = opened.minus(windows.around);
    let peak_to = opened.plus(windows.around);
    let mut by_sensor: BTreeMap<&str, Vec<&ReadingSummary>> = BTreeMap::new();
    for s in summaries.iter().filter(|s| s.count > 0) {
        if !faulty.contains(&s.sensor) {
            by_sensor.entry(&s.sensor).or_default().push(s);
        }
    }
    let mut out = Vec::new();
    for (sensor, list) in by_sensor {
        let before: Vec<&&ReadingSummary> = list
            .iter()
            .filter(|s| s.to >= base_from && s.to < peak_from)
            .collect();
        let around: Vec<&&ReadingSummary> = list
            .iter()
            .filter(|s| s.to >= peak_from && s.to <= peak_to)
            .collect();
        let (Some(first), Some(last)) = (before.first(), before.last()) else {
            continue;
        };
        let count: u32 = before.iter().map(|s| s.count).sum();
        let baseline = before.iter().map(|s| s.sum).sum::<f64>() / f64::from(count.max(1));
        let Some(peak) = around.iter().max_by(|a, b| a.max.total_cmp(&b.max)) else {
            continue;
        };
        let Some(low) = around.iter().min_by(|a, b| a.min.total_cmp(&b.min)) else {
            continue;
        };
        out.push(Change {
            sensor: sensor.to_string(),
            kind: first.kind,
            rack: first.location.rack.clone(),
            baseline,
            baseline_span: (first.from, last.to),
            peak: peak.max,
            peak_at: peak.to,
            low: low.min,
            low_at: low.to,
        });
    }
    out
}

/// The sensors of `(site, zone)` that a sensor-fault event names between `from` and `to`:
/// their readings are left out of the judgement.
pub fn faulty_sensors<'a>(
    events: impl IntoIterator<Item = &'a StoredEvent>,
    site: &str,
    zone: &str,
    from: Timestamp,
    to: Timestamp,
) -> BTreeSet<String> {
    events
        .into_iter()
        .filter_map(|e| match &e.payload {
            Payload::SensorEvent(s)
                if s.location.site == site
                    && s.location.zone == zone
                    && s.ts >= from
                    && s.ts <= to
                    && (s.category == Category::Device
                        || FAULT_DETECTORS.contains(&s.detector.as_str())) =>
            {
                Some(s.sensor.clone())
            }
            _ => None,
        })
        .collect()
}

/// The probable cause from the zone's readings around an incident opened at `opened`;
/// `summaries` are the zone's reading summaries (any kinds, any times: those outside the
/// windows are ignored), `faulty` the sensors whose readings are not trusted. `None` when the
/// readings do not decide (see the module rules).
pub fn explain(
    summaries: &[&ReadingSummary],
    opened: Timestamp,
    windows: Windows,
    faulty: &BTreeSet<String>,
) -> Option<ProbableCause> {
    let all = changes(summaries, opened, windows, faulty);
    let of_kind = |k: SensorKind| all.iter().filter(move |c| c.kind == k);
    let rising_inlets: Vec<&Change> = of_kind(SensorKind::InletTemp)
        .filter(|c| c.rise() >= RISE)
        .collect();
    if rising_inlets.is_empty() {
        return None;
    }
    let inlet_lines = || rising_inlets.iter().take(4).map(|c| c.quote());
    let supplies: Vec<&Change> = of_kind(SensorKind::SupplyAirTemp).collect();
    let mut capacity: Vec<String> = supplies
        .iter()
        .filter(|c| c.rise() >= RISE)
        .map(|c| c.quote())
        .collect();
    let supply_rose = !capacity.is_empty();
    capacity.extend(delta_t_drops(&all));
    capacity.extend(
        all.iter()
            .filter(|c| matches!(c.kind, SensorKind::CoolingState | SensorKind::FanSpeed))
            .filter(|c| c.baseline > 0.0 && c.low <= 0.0)
            .map(|c| c.quote_fall()),
    );
    if !capacity.is_empty() {
        let why = if supply_rose {
            "the zone's cooling supply air rose with the inlets"
        } else {
            "a cooling unit of the zone lost capacity (ΔT collapsed, or cooling or fan off) as the inlets rose"
        };
        capacity.extend(inlet_lines());
        return Some(ProbableCause {
            kind: CauseKind::CoolingCapacity,
            summary: format!("cooling capacity (from the readings): {why}"),
            evidence: capacity,
        });
    }
    let racks: BTreeSet<&str> = rising_inlets
        .iter()
        .map(|c| c.rack.as_deref().unwrap_or(c.sensor.as_str()))
        .collect();
    if let [rack] = racks.iter().copied().collect::<Vec<_>>().as_slice() {
        let steady_others = of_kind(SensorKind::InletTemp)
            .filter(|c| c.rise() < STEADY)
            .count();
        let mut evidence: Vec<String> = inlet_lines().collect();
        evidence.push(format!(
            "{steady_others} other inlet sensor(s) of the zone held steady (within {STEADY:.1} °C)"
        ));
        return Some(ProbableCause {
            kind: CauseKind::RackDensity,
            summary: format!(
                "single rack (from the readings): only rack {rack}'s inlet rose; look at its own load or airflow"
            ),
            evidence,
        });
    }
    let steady: Vec<&Change> = supplies
        .iter()
        .copied()
        .filter(|c| c.rise() < STEADY)
        .collect();
    if steady.is_empty() || steady.len() < supplies.len() {
        return None;
    }
    let mut evidence: Vec<String> = steady
        .iter()
        .map(|c| format!("{} (steady)", c.quote()))
        .collect();
    evidence.extend(inlet_lines());
    let names: Vec<&str> = racks.into_iter().collect();
    Some(ProbableCause {
        kind: CauseKind::Airflow,
        summary: format!(
            "airflow or containment (from the readings): inlets of racks {} rose while the cooling supply air held steady",
            names.join(", ")
        ),
        evidence,
    })
}

/// Cooling units whose ΔT (return − supply, paired by unit name) fell by [`RISE`] or more.
fn delta_t_drops(all: &[Change]) -> Vec<String> {
    let unit = crate::report::facility::cooling_unit_name;
    let mut out = Vec::new();
    for supply in all.iter().filter(|c| c.kind == SensorKind::SupplyAirTemp) {
        let Some(ret) = all.iter().find(|c| {
            c.kind == SensorKind::ReturnAirTemp && unit(&c.sensor) == unit(&supply.sensor)
        }) else {
            continue;
        };
        let before = ret.baseline - supply.baseline;
        // The narrowest ΔT around the opening: the return's low against the supply's peak.
        let around = ret.low - supply.peak;
        if before - around >= RISE {
            out.push(format!(
                "cooling unit {}: ΔT {before:.1} °C on average {}–{}, down to {around:.1} °C by {}",
                unit(&supply.sensor),
                supply.baseline_span.0.to_rfc3339(),
                supply.baseline_span.1.to_rfc3339(),
                supply.peak_at.max(ret.low_at).to_rfc3339()
            ));
        }
    }
    out
}

/// The event cause with the readings cause over it: the readings decide unless the events
/// found a sensor fault (then the readings are not to be trusted) or the readings have no
/// opinion. The event evidence follows the readings evidence.
pub fn merge(events: ProbableCause, readings: Option<ProbableCause>) -> ProbableCause {
    match readings {
        Some(mut r) if events.kind != CauseKind::SensorFault => {
            if r.kind != events.kind {
                r.evidence.push(format!(
                    "the raised events alone suggested: {}",
                    events.summary
                ));
            }
            r.evidence.extend(events.evidence);
            r
        }
        _ => events,
    }
}

/// `incident` (a thermal one) with its probable cause merged ([`merge`]) with what its zone's
/// readings say around its opening: `summaries` are the reading summaries held (any zone),
/// `events` the stored events (for the sensor faults to leave out). Other categories and
/// incidents without a cause are left as they are.
pub fn refine_incident<'a>(
    incident: &mut crate::incidents::Incident,
    summaries: impl IntoIterator<Item = &'a ReadingSummary>,
    events: impl IntoIterator<Item = &'a StoredEvent>,
    windows: Windows,
) {
    let fp = &incident.fingerprint;
    if fp.category != Category::Thermal {
        return;
    }
    let Some(cause) = incident.probable_cause.take() else {
        return;
    };
    let opened = incident.opened_at;
    let zone: Vec<&ReadingSummary> = summaries
        .into_iter()
        .filter(|s| s.location.site == fp.site && s.location.zone == fp.zone)
        .collect();
    let faulty = faulty_sensors(
        events,
        &fp.site,
        &fp.zone,
        opened.minus(windows.before),
        opened.plus(windows.around),
    );
    incident.probable_cause = Some(merge(cause, explain(&zone, opened, windows, &faulty)));
}

pub mod problem;
pub mod read;

#[cfg(test)]
mod problem_tests;
#[cfg(test)]
mod tests;
