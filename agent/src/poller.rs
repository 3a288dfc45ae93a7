//! Device polling tasks: one task per device, each with its own interval and deadline, so a
//! device that does not answer yields an unreachable event and never delays the others.

use crate::modbus::poll::ModbusPoller;
use crate::snmp::poll::SnmpPoller;
use coldaisle_config::{Device, Protocol};
use coldaisle_core::Timestamp;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

/// One point's raw value (before scaling), or why it could not be read.
pub type PointReading = Result<f64, String>;

/// Why a whole device poll failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PollError {
    /// The device did not answer within its deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Network or connection failure.
    #[error("{0}")]
    Io(String),
    /// The device answered something unusable.
    #[error("{0}")]
    Protocol(String),
    /// The device's configuration cannot be polled.
    #[error("{0}")]
    Config(String),
}

impl PollError {
    /// A short, fixed name of the failure class (a `/metrics` label value).
    pub fn kind(&self) -> &'static str {
        match self {
            PollError::Timeout(_) => "timeout",
            PollError::Io(_) => "io",
            PollError::Protocol(_) => "protocol",
            PollError::Config(_) => "config",
        }
    }
}

/// The result of one poll of one device.
#[derive(Debug, Clone)]
pub struct PollOutcome {
    /// Index of the device in the config's device list.
    pub device: usize,
    /// When the poll started (agent clock): the samples' timestamp.
    pub ts: Timestamp,
    /// Raw readings in the device's sensor order, or the device-level failure.
    pub result: Result<Vec<PointReading>, PollError>,
}

/// A protocol poller.
#[derive(Debug)]
pub enum Poller {
    /// SNMP device.
    Snmp(Box<SnmpPoller>),
    /// Modbus device.
    Modbus(ModbusPoller),
}

impl Poller {
    /// The poller for a device.
    pub fn for_device(device: &Device) -> Result<Poller, PollError> {
        match device.protocol {
            Protocol::Snmp => SnmpPoller::new(device).map(|p| Poller::Snmp(Box::new(p))),
            Protocol::Modbus => ModbusPoller::new(device).map(Poller::Modbus),
        }
    }

    /// Polls once (no deadline of its own: see [`poll_with_deadline`]).
    pub async fn poll(&mut self) -> Result<Vec<PointReading>, PollError> {
        match self {
            Poller::Snmp(p) => p.poll().await,
            Poller::Modbus(p) => p.poll().await,
        }
    }

    /// Drops any connection so the next poll starts afresh (after a timeout).
    pub fn reset(&mut self) {
        match self {
            Poller::Snmp(p) => p.reset(),
            Poller::Modbus(p) => p.reset(),
        }
    }
}

/// Polls once within `deadline`.
pub async fn poll_with_deadline(
    poller: &mut Poller,
    deadline: Duration,
) -> Result<Vec<PointReading>, PollError> {
    match tokio::time::timeout(deadline, poller.poll()).await {
        Ok(result) => result,
        Err(_) => {
            poller.reset();
            Err(PollError::Timeout(deadline))
        }
    }
}

/// Runs one device's poll loop until `shutdown` turns true, sending every outcome to `out`
/// and counting it in `metrics`.
///
/// Memory (issue 18): the task lives as long as the agent, one per device, so its future is
/// kept small. The device's config is shared with [`crate::devices::DeviceTasks`] (`Arc`),
/// and the poll in flight (a few KB of protocol state machine) is boxed for its duration
/// only: an idle task holds its ticker, its poller and its channels, not the largest poll
/// future of every protocol.
pub async fn run_device(
    index: usize,
    device: Arc<Device>,
    out: mpsc::Sender<PollOutcome>,
    mut shutdown: watch::Receiver<bool>,
    metrics: crate::poll_metrics::PollMetrics,
) {
    let mut poller = match Poller::for_device(&device) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(device = %device.id, error = %e, "device cannot be polled");
            return;
        }
    };
    let mut ticker = tokio::time::interval(device.poll_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        let ts = Timestamp::now();
        let started = tokio::time::Instant::now();
        let result = Box::pin(poll_with_deadline(&mut poller, device.timeout)).await;
        metrics.record(&device.id, started.elapsed(), result.as_ref().err());
        if let Err(e) = &result {
            tracing::debug!(device = %device.id, address = %device.address, error = %e, "poll failed");
        }
        if out
            .send(PollOutcome {
                device: index,
                ts,
                result,
            })
            .await
            .is_err()
        {
            return;
        }
    }
}
