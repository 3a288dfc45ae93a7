//! From poll outcomes to outbox payloads (pure: time comes with each outcome).
//!
//! For each device: reachability; for each sensor: normalisation, the threshold detector and
//! the reading summariser; sensor transitions then go through the zone correlator. The output
//! is the list of records to append to the outbox, in the order they happened.

use crate::correlate::{SensorTransition, ZoneCorrelator};
use crate::detect::reachability::Reachability;
use crate::detect::summary::Summariser;
use crate::detect::threshold::ThresholdDetector;
use crate::poller::PollOutcome;
use coldaisle_config::{AgentConfig, Device, Sensor};
use coldaisle_core::wire::Payload;
use coldaisle_core::{DeviceEvent, EventState, ReadingSummary, SensorEvent, Timestamp};
use std::time::Duration;

#[derive(Debug)]
struct SensorState {
    threshold: Option<ThresholdDetector>,
    summary: Summariser,
    /// Whether the last reading failed (to log a failing point once, not on every poll).
    failing: bool,
}

#[derive(Debug)]
struct DeviceState {
    device: Device,
    reachability: Reachability,
    sensors: Vec<SensorState>,
}

/// The agent's detection pipeline.
#[derive(Debug)]
pub struct Pipeline {
    devices: Vec<DeviceState>,
    correlator: ZoneCorrelator,
    summary_interval: Duration,
}

impl Pipeline {
    /// A pipeline for every device of `config`, all detectors in their initial state.
    pub fn new(config: &AgentConfig) -> Pipeline {
        let devices = config
            .devices
            .iter()
            .map(|device| DeviceState {
                device: device.clone(),
                reachability: Reachability::default(),
                sensors: device
                    .sensors
                    .iter()
                    .map(|s| SensorState {
                        threshold: s.threshold.clone().map(ThresholdDetector::new),
                        summary: Summariser::default(),
                        failing: false,
                    })
                    .collect(),
            })
            .collect();
        Pipeline {
            devices,
            correlator: ZoneCorrelator::new(
                &config.site,
                config.correlation.window,
                config.correlation.min_sensors,
            ),
            summary_interval: config.summary_interval,
        }
    }

    /// Feeds one poll outcome; returns the payloads it produced.
    pub fn observe(&mut self, outcome: &PollOutcome) -> Vec<Payload> {
        let mut out = Vec::new();
        let Some(state) = self.devices.get_mut(outcome.device) else {
            return out;
        };
        let answered = outcome.result.is_ok();
        if let Some(transition) = state.reachability.observe(outcome.ts, answered) {
            let reason = match &outcome.result {
                Err(e) => e.to_string(),
                Ok(_) => String::new(),
            };
            out.push(Payload::DeviceEvent(DeviceEvent {
                device: state.device.id.clone(),
                location: state.device.location.clone(),
                state: transition,
                reason,
                ts: outcome.ts,
            }));
        }
        let Ok(readings) = &outcome.result else {
            return out;
        };
        for ((sensor, sensor_state), reading) in state
            .device
            .sensors
            .iter()
            .zip(state.sensors.iter_mut())
            .zip(readings)
        {
            let value = match reading {
                Ok(raw) => sensor.normalise(*raw),
                Err(reason) => {
                    if !sensor_state.failing {
                        tracing::warn!(device = %state.device.id, sensor = %sensor.id, %reason, "point unreadable");
                    }
                    sensor_state.failing = true;
                    continue;
                }
            };
            if !value.is_finite() {
                continue;
            }
            sensor_state.failing = false;
            if let Some(window) =
                sensor_state
                    .summary
                    .observe(outcome.ts, value, self.summary_interval)
            {
                out.push(Payload::ReadingSummary(ReadingSummary {
                    sensor: sensor.id.clone(),
                    kind: sensor.kind,
                    location: sensor.location.clone(),
                    from: window.from,
                    to: window.to,
                    count: window.count,
                    min: window.min,
                    max: window.max,
                    sum: window.sum,
                    last: window.last,
                }));
            }
            if let Some(detector) = sensor_state.threshold.as_mut() {
                if let Some(t) = detector.observe(outcome.ts, value) {
                    let severity = detector.config().severity;
                    let event = sensor_event(sensor, severity, &t, outcome.ts);
                    let zone_event = self.correlator.observe(&SensorTransition {
                        sensor: sensor.id.clone(),
                        zone: sensor.location.zone.clone(),
                        rack: sensor.location.rack.clone(),
                        category: event.category,
                        state: event.state,
                        severity,
                        value,
                        ts: outcome.ts,
                    });
                    out.push(Payload::SensorEvent(event));
                    out.extend(zone_event.map(Payload::ZoneEvent));
                }
            }
        }
        out
    }
}

fn sensor_event(
    sensor: &Sensor,
    severity: coldaisle_core::Severity,
    t: &crate::detect::threshold::Transition,
    ts: Timestamp,
) -> SensorEvent {
    SensorEvent {
        sensor: sensor.id.clone(),
        kind: sensor.kind,
        location: sensor.location.clone(),
        category: sensor.kind.category(),
        detector: "threshold".to_string(),
        state: t.state,
        severity,
        value: t.value,
        limit: Some(t.limit),
        first_ts: t.first_ts,
        ts,
    }
}

/// True if the payload is a raised event of any kind (for progress logs).
pub fn is_raise(payload: &Payload) -> bool {
    match payload {
        Payload::SensorEvent(e) => e.state == EventState::Raised,
        Payload::ZoneEvent(e) => e.state == EventState::Raised,
        Payload::DeviceEvent(e) => e.state == EventState::Raised,
        Payload::ReadingSummary(_) => false,
    }
}

#[cfg(test)]
mod tests;
