//! The rows of a replay CSV, put in time order the way a real export needs: a row that steps
//! back in time (a repeated hour, a merged file) is skipped and counted, or with `--sort` the
//! rows are sorted first (stable: rows with equal timestamps keep their file order). Duplicate
//! timestamps and gaps are counted for the summary. Pure: text in, rows and counts out.

use coldaisle_core::Timestamp;
use std::time::Duration;

/// One parsed row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    /// 1-based line number in the file.
    pub line: usize,
    /// Sample time.
    pub ts: Timestamp,
    /// The value as written; `None` for an empty field (a poll without a reading).
    pub value: Option<f64>,
}

/// A gap: a step between consecutive rows of more than [`GAP_FACTOR`] times the usual step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gap {
    /// The row before the gap.
    pub from: Timestamp,
    /// The row after it.
    pub to: Timestamp,
}

impl Gap {
    /// Its length.
    pub fn length(&self) -> Duration {
        self.to.since(self.from)
    }
}

/// A step longer than this many usual (median) steps is a gap.
pub const GAP_FACTOR: u32 = 3;

/// The rows to replay, in time order, and what was done to get there.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ordered {
    /// Rows to feed, in time order.
    pub rows: Vec<Row>,
    /// Line numbers of rows skipped because they are earlier than a row before them.
    pub skipped: Vec<usize>,
    /// Rows whose timestamp equals the previous row's (fed; the detectors see both).
    pub duplicates: usize,
    /// Gaps between fed rows.
    pub gaps: Vec<Gap>,
    /// The usual (median) step between rows, if there are at least two.
    pub usual_step: Option<Duration>,
}

/// Parses the CSV text (a header row, then `timestamp,value`); an error names the line.
pub fn parse(csv: &str) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (index, text) in csv.lines().enumerate().skip(1) {
        let line = index + 1;
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let mut fields = text.split(',').map(|f| f.trim().trim_matches('"'));
        let ts_text = fields.next().unwrap_or("");
        let value_text = fields.next().unwrap_or("");
        let ts = Timestamp::parse(ts_text).map_err(|e| {
            anyhow::anyhow!(
                "line {line}: timestamp `{ts_text}`: {e} (expected RFC 3339 or YYYY-MM-DD HH:MM:SS)"
            )
        })?;
        let value = if value_text.is_empty() {
            None
        } else {
            Some(
                value_text
                    .parse::<f64>()
                    .map_err(|e| anyhow::anyhow!("line {line}: value `{value_text}`: {e}"))?,
            )
        };
        rows.push(Row { line, ts, value });
    }
    Ok(rows)
}

/// Puts `rows` in time order: sorted when `sort`, otherwise rows earlier than the latest row
/// fed so far are skipped. Then counts duplicates and gaps.
pub fn order(mut rows: Vec<Row>, sort: bool) -> Ordered {
    if sort {
        rows.sort_by_key(|r| r.ts);
    }
    let mut out = Ordered::default();
    for row in rows {
        match out.rows.last() {
            Some(last) if row.ts < last.ts => out.skipped.push(row.line),
            Some(last) => {
                if row.ts == last.ts {
                    out.duplicates += 1;
                }
                out.rows.push(row);
            }
            None => out.rows.push(row),
        }
    }
    let mut steps: Vec<i64> = out
        .rows
        .windows(2)
        .map(|w| w[1].ts.millis() - w[0].ts.millis())
        .filter(|s| *s > 0)
        .collect();
    steps.sort_unstable();
    let Some(&median) = steps.get(steps.len() / 2) else {
        return out;
    };
    out.usual_step = u64::try_from(median).ok().map(Duration::from_millis);
    let limit = median.saturating_mul(i64::from(GAP_FACTOR));
    out.gaps = out
        .rows
        .windows(2)
        .filter(|w| w[1].ts.millis() - w[0].ts.millis() > limit)
        .map(|w| Gap {
            from: w[0].ts,
            to: w[1].ts,
        })
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(rows: &[&str]) -> String {
        let mut s = String::from("timestamp,value\n");
        for r in rows {
            s.push_str(r);
            s.push('\n');
        }
        s
    }

    /// A repeated hour as a DST export writes it: 01:00, 01:30, 02:00, then 01:00 and 01:30
    /// again, then 02:30.
    fn repeated_hour() -> String {
        csv(&[
            "2026-10-25 01:00:00,1",
            "2026-10-25 01:30:00,2",
            "2026-10-25 02:00:00,3",
            "2026-10-25 01:00:00,4",
            "2026-10-25 01:30:00,5",
            "2026-10-25 02:30:00,6",
        ])
    }

    #[test]
    fn rows_stepping_back_are_skipped_by_line() {
        let o = order(parse(&repeated_hour()).expect("parse"), false);
        assert_eq!(o.skipped, vec![5, 6]);
        let values: Vec<Option<f64>> = o.rows.iter().map(|r| r.value).collect();
        assert_eq!(values, vec![Some(1.0), Some(2.0), Some(3.0), Some(6.0)]);
        assert_eq!(o.duplicates, 0);
    }

    #[test]
    fn sort_keeps_every_row_and_counts_the_duplicates() {
        let o = order(parse(&repeated_hour()).expect("parse"), true);
        assert!(o.skipped.is_empty());
        let values: Vec<Option<f64>> = o.rows.iter().map(|r| r.value).collect();
        // Stable: the first 01:00 row stays before the repeated one.
        assert_eq!(
            values,
            vec![
                Some(1.0),
                Some(4.0),
                Some(2.0),
                Some(5.0),
                Some(3.0),
                Some(6.0)
            ]
        );
        assert_eq!(o.duplicates, 2);
    }

    #[test]
    fn gaps_are_steps_well_above_the_usual_one() {
        let o = order(
            parse(&csv(&[
                "2026-10-25 00:00:00,1",
                "2026-10-25 00:05:00,1",
                "2026-10-25 00:10:00,",
                "2026-10-25 00:15:00,1",
                "2026-10-25 00:30:00,1",
                "2026-10-25 00:35:00,1",
                "2026-10-25 02:35:00,1",
            ]))
            .expect("parse"),
            false,
        );
        assert_eq!(o.usual_step, Some(Duration::from_secs(300)));
        // 15 minutes is exactly 3 steps (not a gap); 2 hours is.
        assert_eq!(o.gaps.len(), 1);
        assert_eq!(o.gaps[0].length(), Duration::from_secs(7200));
        assert_eq!(
            o.rows[2].value, None,
            "an empty value is a poll without a reading"
        );
    }

    #[test]
    fn bad_fields_name_the_line() {
        let e = parse("ts,v\n2026-11-25 00:00:00,1\nyesterday,2\n").expect_err("timestamp");
        assert!(
            e.to_string().starts_with("line 3: timestamp `yesterday`"),
            "{e}"
        );
        let e = parse("ts,v\n2026-11-25 00:00:00,abc\n").expect_err("value");
        assert!(e.to_string().starts_with("line 2: value `abc`"), "{e}");
    }
}
