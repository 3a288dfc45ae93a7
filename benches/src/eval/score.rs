//! NAB scoring, implemented from the published rules (Lavin & Ahmad, "Evaluating Real-time
//! Anomaly Detection Algorithms — the Numenta Anomaly Benchmark", ICMLA 2015; the rules as
//! `nab/sweeper.py` applies them). Pure: rows, windows and detections in, scores out.
//!
//! - Every labelled anomaly *window* (a range of rows) is worth at most one true positive: the
//!   earliest detection in it, weighted by a scaled sigmoid of its position (`A_TP` at the left
//!   edge, 0 at the right edge). A window without a detection costs `A_FN`.
//! - A detection outside every window is a false positive: `A_FP` times the same sigmoid of its
//!   distance past the previous window's right edge (relative to that window's width; −1 with
//!   no window before it), so a detection just after a window costs almost nothing and one far
//!   away costs the full `A_FP`.
//! - The first `min(⌊0.15·n⌋, 750)` rows are a probationary period: not scored at all.
//! - A set of files is normalised to `100 · (S − S_null) / (S_perfect − S_null)`, where the null
//!   detector misses every window (`S_null = −A_FN · windows`) and the perfect one hits every
//!   window at its left edge (`S_perfect = A_TP · windows`).

/// NAB's application profile: weights of true positives, false positives, false negatives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostMatrix {
    /// Weight of a window hit at its left edge.
    pub tp: f64,
    /// Weight of a false positive far from any window (applied as a cost).
    pub fp: f64,
    /// Weight of a missed window (applied as a cost).
    pub fn_: f64,
}

/// NAB's standard profile: `A_TP = 1`, `A_FP = −0.11`, `A_FN = −1`.
pub const STANDARD: CostMatrix = CostMatrix {
    tp: 1.0,
    fp: 0.11,
    fn_: 1.0,
};

/// Share of the rows (at most [`PROBATION_CAP`]) that is probationary.
pub const PROBATION_SHARE: f64 = 0.15;
/// Longest probationary period, in rows.
pub const PROBATION_CAP: usize = 750;

/// `2·sigmoid(−5·x) − 1`: +0.987 at the left edge of a window (x = −1), 0 at its right edge
/// (x = 0), −0.987 a window's width past it; −1 beyond x = 3.
pub fn scaled_sigmoid(position: f64) -> f64 {
    if position > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * position).exp()) - 1.0
    }
}

/// Number of probationary rows of a file of `rows` rows.
pub fn probation(rows: usize) -> usize {
    // floor(0.15 · n) for any realistic n fits a usize exactly.
    let share = (PROBATION_SHARE * rows as f64).floor() as usize;
    share.min(PROBATION_CAP)
}

/// The score each row would get if it were a detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowWeight {
    /// The window the row is in (index into the file's windows), if any.
    pub window: Option<usize>,
    /// Weighted score of a detection on this row (positive in a window, negative outside).
    pub weight: f64,
    /// In the probationary period: not scored.
    pub probationary: bool,
}

/// One file's windows as inclusive row ranges, in order, not overlapping.
pub type Windows = [(usize, usize)];

/// The per-row weights of a file of `rows` rows with `windows` (NAB's `calcSweepScore`).
pub fn row_weights(rows: usize, windows: &Windows, cost: CostMatrix) -> Vec<RowWeight> {
    let max_tp = scaled_sigmoid(-1.0);
    let probation = probation(rows);
    let mut out = Vec::with_capacity(rows);
    let mut next = 0;
    let mut current: Option<usize> = None;
    let mut previous: Option<usize> = None;
    for i in 0..rows {
        if current.is_none() && windows.get(next).is_some_and(|w| w.0 == i) {
            current = Some(next);
            next += 1;
        }
        let weight = match current {
            Some(w) => {
                let (left, right) = windows[w];
                let width = (right - left + 1) as f64;
                let position = -((right as f64) - (i as f64) + 1.0) / width;
                scaled_sigmoid(position) * cost.tp / max_tp
            }
            None => {
                let unweighted = match previous {
                    None => -1.0,
                    Some(w) => {
                        let (left, right) = windows[w];
                        // NAB divides by (width − 1); a one-row window would divide by zero there.
                        let denominator = ((right - left) as f64).max(1.0);
                        scaled_sigmoid((i - right) as f64 / denominator)
                    }
                };
                unweighted * cost.fp
            }
        };
        out.push(RowWeight {
            window: current,
            weight,
            probationary: i < probation,
        });
        if let Some(w) = current {
            if windows[w].1 == i {
                previous = Some(w);
                current = None;
            }
        }
    }
    out
}

/// One file's (or a set of files') result.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Score {
    /// Raw NAB score (sum of window rewards and costs).
    pub raw: f64,
    /// Scored windows (those with at least one row after probation).
    pub windows: usize,
    /// Windows with a detection.
    pub hit: usize,
    /// Detections outside every window, after probation.
    pub false_alarms: usize,
    /// Days covered by the scored rows.
    pub days: f64,
}

impl Score {
    /// Adds another file's score.
    pub fn add(&mut self, other: &Score) {
        self.raw += other.raw;
        self.windows += other.windows;
        self.hit += other.hit;
        self.false_alarms += other.false_alarms;
        self.days += other.days;
    }

    /// `100 · (S − S_null) / (S_perfect − S_null)` under `cost`.
    pub fn normalised(&self, cost: CostMatrix) -> f64 {
        let null = -cost.fn_ * self.windows as f64;
        let perfect = cost.tp * self.windows as f64;
        if perfect == null {
            return 0.0;
        }
        100.0 * (self.raw - null) / (perfect - null)
    }

    /// False alarms per day of data.
    pub fn false_alarms_per_day(&self) -> f64 {
        if self.days > 0.0 {
            self.false_alarms as f64 / self.days
        } else {
            0.0
        }
    }
}

/// Scores `detected` rows (row indices, any order) of a file; `weights` from [`row_weights`];
/// `days` is the time the scored rows cover (for false alarms per day).
pub fn score(weights: &[RowWeight], detected: &[usize], cost: CostMatrix, days: f64) -> Score {
    let windows: std::collections::BTreeSet<usize> = weights
        .iter()
        .filter(|w| !w.probationary)
        .filter_map(|w| w.window)
        .collect();
    let mut best: std::collections::BTreeMap<usize, f64> = std::collections::BTreeMap::new();
    let mut fp = 0.0;
    let mut false_alarms = 0;
    for &row in detected {
        let Some(w) = weights.get(row).filter(|w| !w.probationary) else {
            continue;
        };
        match w.window {
            Some(window) => {
                let b = best.entry(window).or_insert(f64::NEG_INFINITY);
                *b = b.max(w.weight);
            }
            None => {
                fp += w.weight;
                false_alarms += 1;
            }
        }
    }
    let missed = windows.len() - best.len();
    Score {
        raw: fp + best.values().sum::<f64>() - cost.fn_ * missed as f64,
        windows: windows.len(),
        hit: best.len(),
        false_alarms,
        days,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn sigmoid_matches_the_published_anchor_points() {
        assert!((scaled_sigmoid(-1.0) - 0.986_614_298).abs() < 1e-6);
        assert!((scaled_sigmoid(-0.5) - 0.848_283_639).abs() < 1e-6);
        assert!(close(scaled_sigmoid(0.0), 0.0));
        assert!((scaled_sigmoid(1.0) + 0.986_614_298).abs() < 1e-6);
        assert!(close(scaled_sigmoid(3.5), -1.0));
    }

    #[test]
    fn probation_is_fifteen_percent_capped_at_750_rows() {
        assert_eq!(probation(100), 15);
        assert_eq!(probation(4032), 604);
        assert_eq!(probation(10_000), 750);
    }

    /// 100 rows (15 probationary), one window over rows 40..=49.
    fn file() -> Vec<RowWeight> {
        row_weights(100, &[(40, 49)], STANDARD)
    }

    #[test]
    fn a_detection_at_the_left_edge_scores_one_and_later_ones_less() {
        let w = file();
        // Left edge: position −10/10 = −1 → exactly A_TP after scaling by max_tp.
        assert!(close(score(&w, &[40], STANDARD, 1.0).raw, 1.0));
        let late = score(&w, &[49], STANDARD, 1.0).raw;
        // Right edge: position −1/10 → 2·sigmoid(0.5) − 1 = 0.2449, scaled by 1/0.98661.
        assert!(
            (late - 0.244_918_662 / 0.986_614_298).abs() < 1e-6,
            "{late}"
        );
        // Only the best detection of a window counts.
        assert!(close(score(&w, &[49, 40, 45], STANDARD, 1.0).raw, 1.0));
        assert_eq!(score(&w, &[49, 40, 45], STANDARD, 1.0).hit, 1);
    }

    #[test]
    fn a_miss_costs_one_and_false_alarms_cost_by_distance() {
        let w = file();
        let none = score(&w, &[], STANDARD, 1.0);
        assert!(close(none.raw, -1.0));
        assert_eq!((none.windows, none.hit), (1, 0));
        // Before any window: the full −0.11.
        let early = score(&w, &[20], STANDARD, 1.0);
        assert!(close(early.raw, -1.0 - 0.11), "{}", early.raw);
        assert_eq!(early.false_alarms, 1);
        // Right after the window (row 50: 1/9 of a width past it) costs little.
        let after = score(&w, &[50], STANDARD, 1.0).raw + 1.0;
        assert!((after - 0.11 * scaled_sigmoid(1.0 / 9.0)).abs() < 1e-12);
        assert!(after > -0.11 && after < 0.0);
        // Probationary rows are not scored.
        assert!(close(score(&w, &[3], STANDARD, 1.0).raw, -1.0));
    }

    #[test]
    fn windows_inside_the_probation_are_not_scored_and_normalising_spans_null_to_perfect() {
        let w = row_weights(100, &[(2, 5), (60, 69)], STANDARD);
        let s = score(&w, &[60], STANDARD, 2.0);
        assert_eq!(s.windows, 1);
        assert!(close(s.normalised(STANDARD), 100.0));
        let none = score(&w, &[], STANDARD, 2.0);
        assert!(close(none.normalised(STANDARD), 0.0));
        let mut total = s;
        total.add(&none);
        assert!(close(total.normalised(STANDARD), 50.0));
        let fa = score(&w, &[30, 31], STANDARD, 2.0);
        assert!(close(fa.false_alarms_per_day(), 1.0));
    }
}
