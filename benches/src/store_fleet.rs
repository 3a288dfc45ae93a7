//! The synthetic fleet of the store benchmarks (`store_backends`, `restart`): agents with
//! inlet sensors, one 1-minute reading summary per sensor and minute, and a threshold raise
//! and clear per agent every [`EVENT_EVERY`] minutes. Pure: the payloads of one agent and
//! minute, so each benchmark batches and stores them its own way.

use coldaisle_core::wire::Payload;
use coldaisle_core::{
    Category, EventState, Location, ReadingSummary, SensorEvent, SensorKind, Severity, Timestamp,
};

/// Minutes between two raises of one agent (each cleared 5 minutes later).
pub const EVENT_EVERY: u64 = 30;
/// Start of the fleet's history: 2026-11-01T00:00:00Z.
pub const T0: i64 = 1_793_491_200_000;
/// One minute, in milliseconds.
pub const MINUTE: i64 = 60_000;
/// The site every agent is in.
pub const SITE: &str = "s1";

/// How the fleet is laid out.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Inlet sensors per agent.
    pub sensors: u64,
    /// Zones of the site: agent `a` is in zone `a % zones`.
    pub zones: u64,
}

impl Shape {
    /// Where agent `agent`'s sensors are: its zone, and a rack of its own.
    pub fn location(&self, agent: u64) -> Location {
        Location {
            site: SITE.into(),
            zone: format!("Z{:02}", agent % self.zones.max(1)),
            row: None,
            rack: Some(format!("R{agent}")),
        }
    }

    /// The payloads agent `agent` produces in minute `minute` (from [`T0`]): a summary per
    /// sensor, then the raise or clear of that minute, if any.
    pub fn minute(&self, agent: u64, minute: u64) -> Vec<Payload> {
        let from = Timestamp(T0 + minute as i64 * MINUTE);
        let mut out: Vec<Payload> = (0..self.sensors)
            .map(|s| {
                let base = 22.0 + (agent % 5) as f64 + s as f64 * 0.1;
                Payload::ReadingSummary(ReadingSummary {
                    sensor: format!("a{agent}-s{s}"),
                    kind: SensorKind::InletTemp,
                    location: self.location(agent),
                    from,
                    to: Timestamp(from.0 + MINUTE),
                    count: 6,
                    min: base,
                    max: base + 0.4,
                    sum: 6.0 * (base + 0.2),
                    last: base + 0.1,
                })
            })
            .collect();
        let phase = (minute + agent) % EVENT_EVERY;
        if phase == 0 || phase == 5 {
            let raised = phase == 0;
            out.push(Payload::SensorEvent(SensorEvent {
                sensor: format!("a{agent}-s{}", (minute / EVENT_EVERY) % self.sensors.max(1)),
                kind: SensorKind::InletTemp,
                location: self.location(agent),
                category: Category::Thermal,
                detector: "threshold".into(),
                state: if raised {
                    EventState::Raised
                } else {
                    EventState::Cleared
                },
                severity: Severity::Warning,
                value: if raised { 28.5 } else { 25.0 },
                limit: Some(27.0),
                expected_crossing: None,
                first_ts: from,
                ts: from,
            }));
        }
        out
    }
}
