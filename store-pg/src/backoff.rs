//! When to try connecting again after a failure: pure, time is a parameter.

use std::time::{Duration, Instant};

/// First pause after a failed connection attempt.
pub(crate) const FIRST: Duration = Duration::from_millis(200);
/// Longest pause between two attempts.
pub(crate) const MAX: Duration = Duration::from_secs(5);

/// Exponential backoff between connection attempts: calls made during the pause fail fast
/// (with the last error) instead of each waiting for a connect timeout.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    /// The pause after the next failure.
    next_pause: Duration,
    /// No attempt before this.
    not_before: Option<Instant>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next_pause: FIRST,
            not_before: None,
        }
    }
}

impl Backoff {
    /// How long until an attempt is allowed at `now` (`None`: allowed now).
    pub fn wait(&self, now: Instant) -> Option<Duration> {
        self.not_before
            .and_then(|t| t.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// An attempt failed at `now`: pause, and double the next pause (up to [`MAX`]).
    pub fn failed(&mut self, now: Instant) {
        self.not_before = Some(now + self.next_pause);
        self.next_pause = (self.next_pause * 2).min(MAX);
    }

    /// An attempt succeeded: the next failure pauses [`FIRST`] again.
    pub fn succeeded(&mut self) {
        *self = Backoff::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap_and_reset_on_success() {
        let t0 = Instant::now();
        let mut b = Backoff::default();
        assert_eq!(b.wait(t0), None, "first attempt at once");
        b.failed(t0);
        assert_eq!(b.wait(t0), Some(FIRST));
        assert_eq!(b.wait(t0 + FIRST), None);
        let mut now = t0;
        let mut pauses = Vec::new();
        for _ in 0..8 {
            b.failed(now);
            let pause = b.wait(now).expect("paused");
            pauses.push(pause);
            now += pause;
        }
        assert_eq!(pauses[0], FIRST * 2);
        assert!(pauses.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*pauses.last().expect("some"), MAX);
        b.succeeded();
        b.failed(now);
        assert_eq!(b.wait(now), Some(FIRST));
    }
}
