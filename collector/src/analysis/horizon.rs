//! How far back in event time the analysis keeps its inputs: the *horizon*, computed from the
//! live rules.
//!
//! Invariant (enforced by [`super::Analysis::prune`]): with `latest` the latest event time
//! held, everything that can still change a result is held, and only that:
//! - events and `(agent, seq)` keys from the *floor* `latest - horizon` on (from earlier
//!   while an incident that is not final before the floor opened less than
//!   [`crate::cause::COOLING_LEAD`] after it: its probable cause reads its zone's events from
//!   then on), and each scope's inputs since its latest checkpoint before that;
//! - every incident that is open, or resolved at or after its scope's floor; an older one is
//!   forgotten, and kept as a compact summary (probable cause, recurrence point) only while a
//!   problem counts it or could still count it (opened within the problem window);
//! - step-change events (density evidence) within `density_lookback` before the floor or
//!   before a problem's opening;
//! - every problem and every operator action (they are few).
//!
//! An event or action before the floor is stored by the caller but changes nothing: it is
//! counted as *too late* ([`super::Analysis::too_late`]). Later ones are applied exactly, so
//! every result that depends only on inputs from the floor on equals a full rebuild's.

use crate::incidents::IncidentRules;
use crate::problems::ProblemRules;
use coldaisle_core::Timestamp;
use std::time::Duration;

/// Added to the longest rule span: late deliveries (clock skew, an outbox backlog) up to it
/// are applied exactly even at the edge of the longest window.
pub const MARGIN: Duration = if cfg!(test) {
    Duration::from_secs(3600)
} else {
    Duration::from_secs(24 * 3600)
};

/// The horizon of these rules: the longest span any rule looks back over (problem window,
/// verification window, quiet period, sustained-excursion time, the probable cause's cooling
/// lead) plus [`MARGIN`]. Density evidence has its own retention (see the module doc), and
/// recurrence signatures read the compact summaries of their problem's incidents.
pub fn horizon(incidents: &IncidentRules, problems: &ProblemRules) -> Duration {
    [
        problems.window,
        problems.verification_window,
        incidents.quiet_period,
        incidents.sustained_after.unwrap_or_default(),
        crate::cause::COOLING_LEAD,
    ]
    .into_iter()
    .max()
    .unwrap_or_default()
        + MARGIN
}

/// How much event time passes between two prunes: an eighth of the horizon (at least a
/// minute), so memory holds at most 9/8 of the horizon (plus the last few inputs of each
/// scope before its floor's checkpoint).
///
/// It is also the *grid* that prunes and the scopes' sparse checkpoints share: cells of this
/// length counted from the epoch. Each scope keeps its latest checkpoint of every cell, and a
/// prune runs when the cutoff (`latest − horizon`) enters a new cell ([`next_prune`]), so the
/// checkpoint the scope's floor moves to is the last one before that cell's start. Without
/// the shared grid (before issue 13 part 9) the floor could lag the cutoff by a whole sparse
/// spacing more, and memory held up to 11/8 of the horizon.
pub fn prune_every(horizon: Duration) -> Duration {
    (horizon / 8).max(Duration::from_secs(60))
}

/// Event time of the next prune after one at `latest`: when the cutoff `latest − horizon`
/// reaches the start of the next cell of the [`prune_every`] grid.
pub fn next_prune(latest: Timestamp, horizon: Duration) -> Timestamp {
    let horizon_ms = millis(horizon);
    let every = millis(prune_every(horizon)).max(1);
    let cutoff = latest.millis().saturating_sub(horizon_ms);
    let next_cell = cutoff
        .div_euclid(every)
        .saturating_add(1)
        .saturating_mul(every);
    Timestamp(next_cell.saturating_add(horizon_ms))
}

/// A duration in whole milliseconds, saturated to `i64`.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_horizon_is_the_longest_rule_span_plus_the_margin() {
        let incidents = IncidentRules::default();
        let problems = ProblemRules::default();
        assert_eq!(horizon(&incidents, &problems), problems.window + MARGIN);
        let long_quiet = IncidentRules {
            quiet_period: Duration::from_secs(90 * 86_400),
            ..IncidentRules::default()
        };
        assert_eq!(
            horizon(&long_quiet, &problems),
            Duration::from_secs(90 * 86_400) + MARGIN
        );
        let short = ProblemRules {
            window: Duration::from_secs(60),
            verification_window: Duration::from_secs(60),
            ..ProblemRules::default()
        };
        assert_eq!(
            horizon(&incidents, &short),
            crate::cause::COOLING_LEAD + MARGIN
        );
        assert_eq!(
            prune_every(Duration::from_secs(80)),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn the_next_prune_comes_when_the_cutoff_enters_the_next_grid_cell() {
        // Horizon 8 h: cells of 1 h, counted from the epoch.
        let horizon = Duration::from_secs(8 * 3600);
        let hour = 3_600_000;
        // Latest at 10:20 → cutoff 02:20 → next cell 03:00 → prune at 11:00.
        assert_eq!(
            next_prune(Timestamp(10 * hour + hour / 3), horizon),
            Timestamp(11 * hour)
        );
        // On a cell's start exactly, the next one.
        assert_eq!(
            next_prune(Timestamp(10 * hour), horizon),
            Timestamp(11 * hour)
        );
        // Before the epoch (cutoff negative) the grid goes on.
        assert_eq!(next_prune(Timestamp(hour / 2), horizon), Timestamp(hour));
        assert_eq!(
            next_prune(Timestamp(i64::MAX), horizon),
            Timestamp(i64::MAX)
        );
    }
}
