//! Writing to the outbox when the disk may refuse: one write (append or retry) off the runtime,
//! and the backoff between retries. The outbox itself holds what failed and never reuses a seq
//! (see the invariants of [`crate::outbox`]); this module only decides when to try again.

use crate::publisher::SharedOutbox;
use coldaisle_core::wire::Payload;
use std::sync::PoisonError;
use std::time::Duration;
use tokio::sync::Notify;

/// First retry delay after a refused write.
pub const RETRY_MIN: Duration = Duration::from_millis(500);
/// Longest retry delay.
pub const RETRY_MAX: Duration = Duration::from_secs(30);

/// Exponential backoff between outbox write retries: doubles per failure up to a cap, back to
/// the start after a success. Pure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteBackoff {
    /// Delay before the next retry.
    delay: Duration,
    /// Reset value.
    min: Duration,
    /// Cap.
    max: Duration,
}

impl Default for WriteBackoff {
    fn default() -> Self {
        WriteBackoff::new(RETRY_MIN, RETRY_MAX)
    }
}

impl WriteBackoff {
    /// A backoff from `min` doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> WriteBackoff {
        WriteBackoff {
            delay: min,
            min,
            max: max.max(min),
        }
    }

    /// The delay before the next retry.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// A write failed: wait longer next time.
    pub fn failed(&mut self) {
        self.delay = (self.delay * 2).min(self.max);
    }

    /// A write succeeded: the next failure starts from the minimum again.
    pub fn succeeded(&mut self) {
        self.delay = self.min;
    }
}

/// Appends `payloads` (or, with `None`, retries what a failed write left) on a blocking thread;
/// wakes the publisher when records were stored. Returns whether a retry is still needed.
pub async fn write(
    outbox: &SharedOutbox,
    payloads: Option<Vec<Payload>>,
    appended: &Notify,
    backoff: &mut WriteBackoff,
) -> bool {
    let outbox = outbox.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut outbox = outbox.lock().unwrap_or_else(PoisonError::into_inner);
        let result = match payloads {
            Some(payloads) => outbox.append(payloads),
            None => outbox.retry(),
        };
        (result, outbox.needs_retry(), outbox.stats())
    })
    .await;
    match result {
        Ok((Ok(seqs), needs_retry, _)) => {
            if !seqs.is_empty() {
                appended.notify_one();
            }
            backoff.succeeded();
            needs_retry
        }
        Ok((Err(e), needs_retry, stats)) => {
            backoff.failed();
            tracing::error!(error = %e, write_failures = stats.write_failures,
                held_in_memory = stats.unwritten, given_up = stats.unwritten_dropped,
                retry_in = ?backoff.delay(), "outbox write failed; readings held and retried");
            needs_retry
        }
        Err(e) => {
            backoff.failed();
            tracing::error!(error = %e, "outbox task failed");
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = WriteBackoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(b.delay().as_secs());
            b.failed();
        }
        assert_eq!(seen, vec![1, 2, 4, 5, 5]);
        b.succeeded();
        assert_eq!(b.delay(), Duration::from_secs(1));
    }
}
