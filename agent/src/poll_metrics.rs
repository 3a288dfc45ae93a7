//! Per-device poll figures for `/metrics` (`crate::metrics_http`): polls, failed polls by
//! kind, and poll time. Each device task records its own polls; labels are device ids only,
//! so the cardinality is bounded by the config. Pure bookkeeping behind a mutex: no I/O, the
//! poll time is measured by the caller.

use crate::poller::PollError;
use coldaisle_core::prom_text::{Histogram, LATENCY_BUCKETS};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// One device's poll figures since the agent started.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceFigures {
    /// Polls finished (answered or failed).
    pub polls: u64,
    /// Failed polls by [`PollError::kind`].
    pub errors: BTreeMap<&'static str, u64>,
    /// Time each poll took, answered or not (a timeout counts its deadline).
    pub duration: Histogram,
}

impl Default for DeviceFigures {
    fn default() -> Self {
        DeviceFigures {
            polls: 0,
            errors: BTreeMap::new(),
            duration: Histogram::new(LATENCY_BUCKETS),
        }
    }
}

/// The figures of every device, shared by the device tasks (write) and `/metrics` (read).
#[derive(Debug, Clone, Default)]
pub struct PollMetrics {
    /// By device id.
    devices: Arc<Mutex<BTreeMap<String, DeviceFigures>>>,
}

impl PollMetrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, DeviceFigures>> {
        self.devices.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one poll of `device` that took `took` and failed with `error`, if any.
    pub fn record(&self, device: &str, took: Duration, error: Option<&PollError>) {
        let mut devices = self.lock();
        let figures = devices.entry(device.to_string()).or_default();
        figures.polls += 1;
        figures.duration.observe(took.as_secs_f64());
        if let Some(e) = error {
            *figures.errors.entry(e.kind()).or_default() += 1;
        }
    }

    /// Forgets devices no longer configured (after a reload), so removed ids stop being
    /// exported.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
        self.lock().retain(|id, _| keep(id));
    }

    /// A copy of every device's figures, by id.
    pub fn snapshot(&self) -> BTreeMap<String, DeviceFigures> {
        self.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_polls_errors_and_time_per_device() {
        let m = PollMetrics::default();
        m.record("pdu1", Duration::from_millis(20), None);
        m.record(
            "pdu1",
            Duration::from_secs(2),
            Some(&PollError::Timeout(Duration::from_secs(2))),
        );
        m.record(
            "ups1",
            Duration::from_millis(3),
            Some(&PollError::Io("refused".into())),
        );
        let snap = m.snapshot();
        let pdu = &snap["pdu1"];
        assert_eq!(pdu.polls, 2);
        assert_eq!(pdu.errors.get("timeout"), Some(&1));
        assert_eq!(pdu.duration.count(), 2);
        assert!((pdu.duration.sum() - 2.02).abs() < 1e-9);
        assert_eq!(snap["ups1"].errors.get("io"), Some(&1));
        m.retain(|id| id == "ups1");
        assert_eq!(m.snapshot().keys().collect::<Vec<_>>(), ["ups1"]);
    }
}
