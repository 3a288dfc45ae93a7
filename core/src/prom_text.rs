//! A small writer of the Prometheus text exposition format (version 0.0.4), shared by the
//! agent's and the collector's `/metrics`.
//!
//! Pure: it builds a `String`, no I/O. Invariants it keeps so that `promtool check metrics`
//! accepts the output:
//! - every family is announced once with `# HELP` and `# TYPE` before its samples, and all its
//!   samples follow it without another family in between (callers write a family in one go);
//! - label values are escaped (`\\`, `\"`, `\n`), help text too (`\\`, `\n`);
//! - values are written as Prometheus reads them (`NaN`, `+Inf`, `-Inf`, integers without a
//!   fraction).
//!
//! Names are the caller's job (conventions: `coldaisle_` prefix, base units, `_total` for
//! counters); [`Exposition::family`] only checks them with a debug assertion.

use std::fmt::Write as _;

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (restarts at zero with the process).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, sum and count of observations.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Default buckets of a latency histogram, in seconds (device polls, requests).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Observations counted into fixed buckets (upper bounds, ascending), with their sum.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Upper bounds, ascending (`+Inf` is implicit).
    bounds: &'static [f64],
    /// Observations per bucket, not cumulative; one more than `bounds` (the `+Inf` bucket).
    counts: Vec<u64>,
    /// Sum of all observations.
    sum: f64,
}

impl Histogram {
    /// An empty histogram over `bounds` (ascending upper bounds).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
        }
    }

    /// Counts one observation.
    pub fn observe(&mut self, value: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.sum += value;
    }

    /// Observations counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Sum of the observations.
    pub fn sum(&self) -> f64 {
        self.sum
    }
}

/// A text exposition being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Announces a family: `# HELP` and `# TYPE`. Its samples must follow.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        debug_assert!(valid_name(name), "bad metric name {name:?}");
        debug_assert!(
            kind != Kind::Counter || name.ends_with("_total"),
            "counter {name} must end in _total"
        );
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        self
    }

    /// One sample of the family just announced.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(name);
        write_labels(&mut self.out, labels, None);
        self.out.push(' ');
        self.out.push_str(&format_value(value));
        self.out.push('\n');
        self
    }

    /// A family with one sample and no labels.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], value)
    }

    /// The samples of one histogram series of the family `name` just announced: cumulative
    /// `_bucket`s with `le`, `_sum` and `_count`.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) -> &mut Self {
        let mut cumulative = 0u64;
        let bucket = format!("{name}_bucket");
        for (i, count) in h.counts.iter().enumerate() {
            cumulative += count;
            let le = h
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| format_value(*b));
            self.out.push_str(&bucket);
            write_labels(&mut self.out, labels, Some(&le));
            let _ = writeln!(self.out, " {cumulative}");
        }
        self.sample(&format!("{name}_sum"), labels, h.sum);
        self.sample(&format!("{name}_count"), labels, cumulative as f64)
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (name, value) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        debug_assert!(
            valid_name(name) && !name.contains(':'),
            "bad label {name:?}"
        );
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(name);
        out.push_str("=\"");
        out.push_str(&escape_label_value(value));
        out.push('"');
    }
    out.push('}');
}

/// A label value escaped for the text format: `\` → `\\`, `"` → `\"`, newline → `\n`.
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Help text escaped for the text format: `\` → `\\`, newline → `\n`.
pub fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A value as Prometheus parses it.
pub fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        // Rust's Display is the shortest text that reads back as the same f64.
        format!("{value}")
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_with_escaped_labels_and_help() {
        let mut e = Exposition::new();
        e.family("coldaisle_x_total", Kind::Counter, "line one\nback\\slash")
            .sample("coldaisle_x_total", &[("device", "a\"b\\c\nd")], 3.0)
            .sample(
                "coldaisle_x_total",
                &[("device", "plain"), ("kind", "io")],
                0.5,
            );
        assert_eq!(
            e.finish(),
            "# HELP coldaisle_x_total line one\\nback\\\\slash\n\
             # TYPE coldaisle_x_total counter\n\
             coldaisle_x_total{device=\"a\\\"b\\\\c\\nd\"} 3\n\
             coldaisle_x_total{device=\"plain\",kind=\"io\"} 0.5\n"
        );
    }

    #[test]
    fn values_as_prometheus_reads_them() {
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(42.0), "42");
        assert_eq!(format_value(-0.25), "-0.25");
        assert_eq!(format_value(1e-9), "0.000000001");
    }

    #[test]
    fn histogram_buckets_are_cumulative_with_inf() {
        const B: &[f64] = &[0.1, 1.0];
        let mut h = Histogram::new(B);
        for v in [0.05, 0.1, 0.5, 7.0] {
            h.observe(v);
        }
        assert_eq!(h.count(), 4);
        let mut e = Exposition::new();
        e.family(
            "coldaisle_poll_duration_seconds",
            Kind::Histogram,
            "Poll time.",
        )
        .histogram("coldaisle_poll_duration_seconds", &[("device", "d1")], &h);
        let text = e.finish();
        let lines: Vec<&str> = text.lines().skip(2).collect();
        assert_eq!(
            lines,
            [
                "coldaisle_poll_duration_seconds_bucket{device=\"d1\",le=\"0.1\"} 2",
                "coldaisle_poll_duration_seconds_bucket{device=\"d1\",le=\"1\"} 3",
                "coldaisle_poll_duration_seconds_bucket{device=\"d1\",le=\"+Inf\"} 4",
                "coldaisle_poll_duration_seconds_sum{device=\"d1\"} 7.65",
                "coldaisle_poll_duration_seconds_count{device=\"d1\"} 4",
            ]
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("coldaisle_a:b_1"));
        assert!(!valid_name("1abc"));
        assert!(!valid_name("a-b"));
        assert!(!valid_name(""));
    }
}
