//! What the agent's retained status message says about it: the config in force and the poll
//! statistics since start (the outbox figures are read by the publisher when it builds the
//! message). The pipeline task records every poll outcome here, a reload replaces the config
//! hash and device count and asks the publisher to republish at once. Pure bookkeeping: no
//! I/O, time passed in.

use crate::outbox::OutboxStats;
use coldaisle_core::wire::{Status, StatusStats};
use coldaisle_core::Timestamp;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;

/// Default period of the status republication while connected.
pub const DEFAULT_STATUS_EVERY: Duration = Duration::from_secs(60);

/// Poll counters since start, with the last result of each running device task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollCounters {
    /// Last poll result by device-task slot (`true` = answered).
    last_ok: HashMap<usize, bool>,
    /// Polls that answered.
    pub polls_ok: u64,
    /// Polls that failed.
    pub polls_failed: u64,
}

impl PollCounters {
    /// Counts one poll of the device task `slot`.
    pub fn record(&mut self, slot: usize, ok: bool) {
        if ok {
            self.polls_ok += 1;
        } else {
            self.polls_failed += 1;
        }
        self.last_ok.insert(slot, ok);
    }

    /// Forgets the device tasks that no longer run (after a reload).
    pub fn retain_slots(&mut self, mut running: impl FnMut(usize) -> bool) {
        self.last_ok.retain(|slot, _| running(*slot));
    }

    /// Devices whose last poll failed.
    pub fn unreachable(&self) -> u64 {
        self.last_ok.values().filter(|ok| !**ok).count() as u64
    }
}

/// The broker connection as the publisher last saw it (for `/metrics`; not in the status
/// message, which is only published while connected).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MqttFigures {
    /// Connected to the broker now.
    pub up: bool,
    /// Connections the broker accepted since start (reconnects included).
    pub connects: u64,
    /// Connections that failed or dropped since start.
    pub disconnects: u64,
}

impl MqttFigures {
    /// The broker accepted a connection.
    pub fn connected(&mut self) {
        self.up = true;
        self.connects += 1;
    }

    /// The connection failed or dropped.
    pub fn disconnected(&mut self) {
        self.up = false;
        self.disconnects += 1;
    }
}

/// The agent facts of the status that change while it runs.
#[derive(Debug, Clone, Default)]
pub struct StatusBook {
    /// Hash of the config in force.
    pub config_hash: String,
    /// Devices in the config in force.
    pub devices: u64,
    /// Poll counters.
    pub polls: PollCounters,
    /// Our clock minus the collector's, in ms, from the latest ack carrying its time.
    pub clock_skew_ms: Option<i64>,
    /// The broker connection.
    pub mqtt: MqttFigures,
}

impl StatusBook {
    /// The status message in `state` (`online` / `offline`) at `ts`, with the outbox figures.
    pub fn status(
        &self,
        agent: &str,
        state: &str,
        outbox: &OutboxFigures,
        ts: Timestamp,
    ) -> Status {
        Status {
            state: state.to_string(),
            agent: agent.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            config_hash: self.config_hash.clone(),
            ts,
            stats: StatusStats {
                devices: self.devices,
                devices_unreachable: self.polls.unreachable(),
                polls_ok: self.polls.polls_ok,
                polls_failed: self.polls.polls_failed,
                outbox_pending_records: outbox.pending_records,
                outbox_pending_bytes: outbox.pending_bytes,
                dropped_summaries: outbox.stats.dropped_summaries,
                dropped_events: outbox.stats.dropped_events,
                corrupt_records: outbox.stats.corrupt,
                clock_skew_ms: self.clock_skew_ms,
                outbox_write_failures: outbox.stats.write_failures,
                outbox_unwritten: outbox.stats.unwritten,
                outbox_unwritten_dropped: outbox.stats.unwritten_dropped,
            },
        }
    }
}

/// The outbox's part of a status, read under its lock.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutboxFigures {
    /// Records not yet acknowledged.
    pub pending_records: u64,
    /// Bytes held.
    pub pending_bytes: u64,
    /// Drop counters since start.
    pub stats: OutboxStats,
}

/// The status shared by the pipeline (poll counts), the running agent (reload) and the
/// publisher (which publishes it on connect, every `every`, and when `changed` fires).
#[derive(Debug, Clone)]
pub struct StatusReporter {
    book: Arc<Mutex<StatusBook>>,
    /// Republication period while connected.
    pub every: Duration,
    /// Fired when the status must be republished now (after a reload).
    pub changed: Arc<Notify>,
}

impl StatusReporter {
    /// A reporter for a config with `config_hash` and `devices`, republished every `every`
    /// (at least one second).
    pub fn new(config_hash: &str, devices: usize, every: Duration) -> StatusReporter {
        StatusReporter {
            book: Arc::new(Mutex::new(StatusBook {
                config_hash: config_hash.to_string(),
                devices: devices as u64,
                polls: PollCounters::default(),
                clock_skew_ms: None,
                mqtt: MqttFigures::default(),
            })),
            every: every.max(Duration::from_secs(1)),
            changed: Arc::new(Notify::new()),
        }
    }

    /// The book, for reading or recording.
    pub fn book(&self) -> MutexGuard<'_, StatusBook> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A reload put a new config in force: new hash and device count, republish now.
    pub fn config_changed(&self, config_hash: &str, devices: usize) {
        {
            let mut book = self.book();
            book.config_hash = config_hash.to_string();
            book.devices = devices as u64;
        }
        self.changed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_polls_and_the_devices_whose_last_poll_failed() {
        let mut c = PollCounters::default();
        c.record(0, true);
        c.record(1, false);
        c.record(2, false);
        c.record(2, true);
        assert_eq!((c.polls_ok, c.polls_failed), (2, 2));
        assert_eq!(c.unreachable(), 1);
        c.retain_slots(|slot| slot != 1);
        assert_eq!(c.unreachable(), 0);
        assert_eq!(
            (c.polls_ok, c.polls_failed),
            (2, 2),
            "totals survive a reload"
        );
    }

    #[test]
    fn status_carries_config_polls_and_outbox_figures() {
        let reporter = StatusReporter::new("h1", 3, Duration::ZERO);
        assert_eq!(reporter.every, Duration::from_secs(1));
        reporter.book().polls.record(4, false);
        reporter.config_changed("h2", 2);
        let outbox = OutboxFigures {
            pending_records: 5,
            pending_bytes: 900,
            stats: OutboxStats {
                dropped_summaries: 1,
                dropped_events: 2,
                corrupt: 3,
                write_failures: 4,
                unwritten: 5,
                unwritten_dropped: 6,
            },
        };
        let s = reporter
            .book()
            .status("a1", "online", &outbox, Timestamp(7));
        assert_eq!((s.state.as_str(), s.agent.as_str()), ("online", "a1"));
        assert_eq!((s.config_hash.as_str(), s.ts), ("h2", Timestamp(7)));
        let st = s.stats;
        assert_eq!(
            (st.devices, st.devices_unreachable, st.polls_failed),
            (2, 1, 1)
        );
        assert_eq!(
            (st.outbox_pending_records, st.outbox_pending_bytes),
            (5, 900)
        );
        assert_eq!(
            (st.dropped_summaries, st.dropped_events, st.corrupt_records),
            (1, 2, 3)
        );
        assert_eq!(
            (
                st.outbox_write_failures,
                st.outbox_unwritten,
                st.outbox_unwritten_dropped
            ),
            (4, 5, 6)
        );
    }
}
