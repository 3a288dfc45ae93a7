//! How many OIDs one GET to a device may carry (pure): the configured `max_oids_per_request`
//! at first, lowered for good (for the life of the poller: until the agent restarts or reloads
//! its config) when the device shows that its answers must be smaller. Never raised again.
//!
//! Devices show it two ways:
//! - **tooBig** (RFC 3416 4.2.1): the answer to a GET of n OIDs would exceed the device's
//!   message size. The size becomes at most n / 2; the poll asks the same OIDs again in
//!   smaller GETs, so no point is lost.
//! - **Silence**: net-snmp's snmpd with a small `sendMessageMaxSize` (and devices built on it)
//!   logs "send response: Too long" and sends nothing. A dead device is silent too, so silence
//!   alone lowers nothing. A GET larger than any the device has answered is marked *before* it
//!   is sent (so a poll cut short by the device's deadline still leaves the mark) and unmarked
//!   when answered. While a mark stands, the next poll first asks one OID: answered, the
//!   device is alive and the marked size was the problem, so the size becomes half the mark;
//!   unanswered, the device is down and nothing changes. A device that was down at its very
//!   first poll is therefore halved once when it comes back (the price of not telling the two
//!   apart); a device that has answered a GET of the current size is never lowered by silence.
//!
//! Invariants: `1 <= current <= configured`; `current` never grows; a mark is only ever a size
//! larger than every size answered so far.

/// Why the size went down (for the one log line per change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The device answered tooBig.
    TooBig,
    /// The device did not answer a GET larger than any it had answered, but answered one OID.
    Silence,
}

impl Cause {
    /// For log lines.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::TooBig => "the device answered tooBig",
            Cause::Silence => {
                "no answer to a larger GET while one OID was answered (the device may drop answers above its message size)"
            }
        }
    }
}

/// A lowering not reported yet: from which size, to which, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lowered {
    /// The size before (the one last reported).
    pub from: usize,
    /// The size now.
    pub to: usize,
    /// The latest cause.
    pub cause: Cause,
}

/// The GET size of one device and what the device has shown about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetSize {
    /// `max_oids_per_request` as configured (at least 1).
    configured: usize,
    /// Most OIDs in one GET now.
    current: usize,
    /// Largest GET the device has answered (0: none yet).
    largest_answered: usize,
    /// A GET larger than any answered that has had no answer (yet).
    unanswered: Option<usize>,
    /// The size last reported by [`GetSize::take_lowered`].
    reported: usize,
    /// Why the size last went down.
    cause: Cause,
}

impl GetSize {
    /// Starts at `configured` OIDs per GET (at least 1).
    #[must_use]
    pub fn new(configured: usize) -> GetSize {
        let configured = configured.max(1);
        GetSize {
            configured,
            current: configured,
            largest_answered: 0,
            unanswered: None,
            reported: configured,
            cause: Cause::TooBig,
        }
    }

    /// Most OIDs in one GET now.
    #[must_use]
    pub fn current(&self) -> usize {
        self.current
    }

    /// `max_oids_per_request` as configured.
    #[must_use]
    pub fn configured(&self) -> usize {
        self.configured
    }

    /// A GET of `n` OIDs is about to be sent: marked if larger than any answered so far.
    pub fn sending(&mut self, n: usize) {
        if n > 1 && n > self.largest_answered && self.unanswered.is_none_or(|m| n > m) {
            self.unanswered = Some(n);
        }
    }

    /// The device answered a GET of `n` OIDs (any error-status but tooBig).
    pub fn answered(&mut self, n: usize) {
        self.largest_answered = self.largest_answered.max(n);
        if self.unanswered.is_some_and(|m| m <= n) {
            self.unanswered = None;
        }
    }

    /// The device answered tooBig to a GET of `n` OIDs: at most `n / 2` from now on. The
    /// device is alive, so a mark of that size or less is cleared.
    pub fn too_big(&mut self, n: usize) {
        if self.unanswered.is_some_and(|m| m <= n) {
            self.unanswered = None;
        }
        self.lower(n / 2, Cause::TooBig);
    }

    /// True while a GET larger than any answered had no answer: the next poll first asks one
    /// OID ([`GetSize::probe_answered`]).
    #[must_use]
    pub fn probe_first(&self) -> bool {
        self.unanswered.is_some()
    }

    /// The one-OID probe was answered: the device is alive, so the marked GET was too large
    /// for it; the size becomes half the mark.
    pub fn probe_answered(&mut self) {
        self.largest_answered = self.largest_answered.max(1);
        if let Some(m) = self.unanswered.take() {
            self.lower(m / 2, Cause::Silence);
        }
    }

    /// The lowering since the last call, if any (one log line per change, not per poll).
    pub fn take_lowered(&mut self) -> Option<Lowered> {
        if self.current == self.reported {
            return None;
        }
        let lowered = Lowered {
            from: self.reported,
            to: self.current,
            cause: self.cause,
        };
        self.reported = self.current;
        Some(lowered)
    }

    fn lower(&mut self, to: usize, cause: Cause) {
        let to = to.max(1);
        if to < self.current {
            self.current = to;
            self.cause = cause;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_big_halves_once_per_answer_and_is_reported_once() {
        let mut size = GetSize::new(50);
        size.sending(50);
        size.too_big(50);
        assert_eq!(size.current(), 25);
        // The halves: 25 too big again, 12 answered.
        size.sending(25);
        size.too_big(25);
        size.sending(12);
        size.answered(12);
        assert_eq!(size.current(), 12);
        assert!(!size.probe_first());
        assert_eq!(
            size.take_lowered(),
            Some(Lowered {
                from: 50,
                to: 12,
                cause: Cause::TooBig
            })
        );
        assert_eq!(size.take_lowered(), None);
        // A later tooBig of a larger GET than the current size lowers nothing more.
        size.too_big(20);
        assert_eq!(size.current(), 10);
        size.too_big(30);
        assert_eq!(size.current(), 10);
        assert_eq!(size.configured(), 50);
    }

    #[test]
    fn never_below_one() {
        let mut size = GetSize::new(2);
        size.too_big(2);
        size.too_big(1);
        assert_eq!(size.current(), 1);
        assert_eq!(GetSize::new(0).current(), 1);
    }

    #[test]
    fn silence_halves_only_once_one_oid_is_answered() {
        let mut size = GetSize::new(50);
        size.sending(50);
        // No answer (timeout, or the poll's deadline dropped the request): marked.
        assert!(size.probe_first());
        assert_eq!(size.current(), 50);
        // Next poll: the probe is not answered either (the device is down): nothing changes.
        assert!(size.probe_first());
        assert_eq!(size.take_lowered(), None);
        // The probe is answered: the size was the problem.
        size.probe_answered();
        assert!(!size.probe_first());
        assert_eq!(size.current(), 25);
        // 25 is silent too, one OID still answers: 12.
        size.sending(25);
        size.probe_answered();
        assert_eq!(size.current(), 12);
        size.sending(12);
        size.answered(12);
        assert!(!size.probe_first());
        assert_eq!(
            size.take_lowered(),
            Some(Lowered {
                from: 50,
                to: 12,
                cause: Cause::Silence
            })
        );
    }

    #[test]
    fn silence_after_an_answer_at_that_size_is_a_dead_device_not_a_size() {
        let mut size = GetSize::new(50);
        size.sending(50);
        size.answered(50);
        // The device dies: a GET of the size it answered before is not marked.
        size.sending(50);
        assert!(!size.probe_first());
        // Neither is a smaller one (the last GET of a poll) nor a single OID.
        size.sending(7);
        size.sending(1);
        assert!(!size.probe_first());
        assert_eq!(size.current(), 50);
    }

    #[test]
    fn an_answer_clears_only_a_mark_it_covers() {
        let mut size = GetSize::new(50);
        // Concurrent GETs: one of 50 in flight, the poll's last GET of 10 answered first.
        size.sending(50);
        size.sending(10);
        size.answered(10);
        assert!(size.probe_first());
        size.answered(50);
        assert!(!size.probe_first());
        // tooBig also proves the device alive at that size.
        let mut size = GetSize::new(50);
        size.sending(50);
        size.too_big(50);
        assert!(!size.probe_first());
        assert_eq!(size.current(), 25);
    }
}
