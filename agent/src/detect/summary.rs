//! Reading summaries: min/max/sum/last of one sensor over an interval, for the collector's
//! zone reports.

use coldaisle_core::Timestamp;

/// Accumulates one sensor's samples until the interval is over.
#[derive(Debug, Clone, Default)]
pub struct Summariser {
    window: Option<Window>,
}

/// A finished interval's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// First sample time.
    pub from: Timestamp,
    /// Last sample time.
    pub to: Timestamp,
    /// Samples.
    pub count: u32,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
    /// Sum.
    pub sum: f64,
    /// Last value.
    pub last: f64,
}

impl Summariser {
    /// Adds a sample; returns the finished window when `ts` is at least `interval` after the
    /// window's first sample (the sample itself starts the next window).
    pub fn observe(
        &mut self,
        ts: Timestamp,
        value: f64,
        interval: std::time::Duration,
    ) -> Option<Window> {
        let finished = match &self.window {
            Some(w) if ts.since(w.from) >= interval => self.window.take(),
            _ => None,
        };
        match &mut self.window {
            Some(w) => {
                w.to = ts;
                w.count += 1;
                w.min = w.min.min(value);
                w.max = w.max.max(value);
                w.sum += value;
                w.last = value;
            }
            None => {
                self.window = Some(Window {
                    from: ts,
                    to: ts,
                    count: 1,
                    min: value,
                    max: value,
                    sum: value,
                    last: value,
                })
            }
        }
        finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn windows_close_on_interval() {
        let mut s = Summariser::default();
        let interval = Duration::from_secs(10);
        let mut out = Vec::new();
        for (t, v) in [(0, 20.0), (5, 22.0), (10, 21.0), (15, 19.0), (20, 18.0)] {
            out.extend(s.observe(Timestamp(t * 1000), v, interval));
        }
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].count, out[0].max, out[0].last), (2, 22.0, 22.0));
        assert_eq!(
            (out[1].min, out[1].sum, out[1].to),
            (19.0, 40.0, Timestamp(15_000))
        );
    }
}
