//! The labelled public datasets the evaluation reads: NAB (numenta/NAB) and SKAB
//! (waico/SKAB). Nothing of them is vendored: a dataset directory is either a checkout or a
//! bare git mirror (as `fetch github:numenta/NAB` leaves it), whose files are read with
//! `git show HEAD:<path>`.

use anyhow::{bail, Context as _};
use coldaisle_core::Timestamp;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A dataset repository: a work tree or a bare git directory.
#[derive(Debug, Clone)]
pub struct Repo {
    dir: PathBuf,
    bare: bool,
}

impl Repo {
    /// Opens `dir`; `fetch` names the command that brings the dataset when it is missing.
    pub fn open(dir: &Path, fetch: &str) -> anyhow::Result<Repo> {
        if dir.join("data").is_dir() {
            return Ok(Repo {
                dir: dir.to_path_buf(),
                bare: false,
            });
        }
        if dir.join("HEAD").is_file() && dir.join("objects").is_dir() {
            return Ok(Repo {
                dir: dir.to_path_buf(),
                bare: true,
            });
        }
        bail!(
            "{}: no dataset here (neither a checkout with data/ nor a git mirror); \
             get it with `{fetch}` (or `git clone` it) and pass its directory",
            dir.display()
        )
    }

    /// The text of the file at `path` (relative to the repository root).
    pub fn read(&self, path: &str) -> anyhow::Result<String> {
        if !self.bare {
            let full = self.dir.join(path);
            return std::fs::read_to_string(&full)
                .with_context(|| format!("reading {}", full.display()));
        }
        let out = Command::new("git")
            .arg("--git-dir")
            .arg(&self.dir)
            .args(["show", &format!("HEAD:{path}")])
            .output()
            .context("running git (needed to read a bare dataset mirror)")?;
        if !out.status.success() {
            bail!(
                "{}: git show HEAD:{path}: {}",
                self.dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        String::from_utf8(out.stdout).with_context(|| format!("{path} is not UTF-8"))
    }

    /// The files directly in folder `dir` (paths relative to the root), sorted.
    pub fn list(&self, dir: &str) -> anyhow::Result<Vec<String>> {
        let mut names = if self.bare {
            let out = Command::new("git")
                .arg("--git-dir")
                .arg(&self.dir)
                .args(["ls-tree", "--name-only", &format!("HEAD:{dir}")])
                .output()
                .context("running git")?;
            if !out.status.success() {
                bail!("{}: no folder {dir}", self.dir.display());
            }
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|n| format!("{dir}/{n}"))
                .collect::<Vec<_>>()
        } else {
            let full = self.dir.join(dir);
            std::fs::read_dir(&full)
                .with_context(|| format!("listing {}", full.display()))?
                .filter_map(Result::ok)
                .map(|e| format!("{dir}/{}", e.file_name().to_string_lossy()))
                .collect()
        };
        names.sort();
        Ok(names)
    }
}

/// One labelled series: samples in time order and anomaly windows as inclusive row ranges.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Name (file, and channel for SKAB).
    pub name: String,
    /// Sample times.
    pub ts: Vec<Timestamp>,
    /// Values.
    pub values: Vec<f64>,
    /// Anomaly windows (row ranges, inclusive, in order).
    pub windows: Vec<(usize, usize)>,
}

/// Parses a NAB data file (`timestamp,value`).
pub fn nab_series(name: &str, csv: &str) -> anyhow::Result<(Vec<Timestamp>, Vec<f64>)> {
    let mut ts = Vec::new();
    let mut values = Vec::new();
    for (i, line) in csv.lines().enumerate().skip(1) {
        let mut f = line.split(',');
        let (Some(t), Some(v)) = (f.next(), f.next()) else {
            continue;
        };
        ts.push(parse_time(t).with_context(|| format!("{name} line {}", i + 1))?);
        values.push(
            v.trim()
                .parse()
                .with_context(|| format!("{name} line {}: value `{v}`", i + 1))?,
        );
    }
    Ok((ts, values))
}

/// Parses NAB's and SKAB's timestamps (`YYYY-MM-DD HH:MM:SS[.ffffff]`, UTC).
pub fn parse_time(text: &str) -> anyhow::Result<Timestamp> {
    Timestamp::parse(text.trim()).map_err(|e| anyhow::anyhow!("timestamp `{text}`: {e}"))
}

/// Window limits given as times → inclusive row ranges (first row at or after the start,
/// last row at or before the end; a window with no row is dropped).
pub fn windows_to_rows(ts: &[Timestamp], limits: &[(Timestamp, Timestamp)]) -> Vec<(usize, usize)> {
    limits
        .iter()
        .filter_map(|&(start, end)| {
            let first = ts.partition_point(|t| *t < start);
            let after = ts.partition_point(|t| *t <= end);
            (after > first).then(|| (first, after - 1))
        })
        .collect()
}

/// Runs of `true` as inclusive row ranges.
pub fn runs(labels: &[bool]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &l) in labels.iter().enumerate() {
        match (l, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i - 1));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, labels.len() - 1));
    }
    out
}

/// Parses one SKAB file (`;`-separated, a `datetime` column, an `anomaly` label) into one
/// series per requested channel, windows = runs of `anomaly = 1`.
pub fn skab_series(name: &str, csv: &str, channels: &[&str]) -> anyhow::Result<Vec<Series>> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .next()
        .context("empty file")?
        .split(';')
        .map(str::trim)
        .collect();
    let col = |c: &str| {
        header
            .iter()
            .position(|h| *h == c)
            .with_context(|| format!("{name}: no column `{c}`"))
    };
    let t_col = col("datetime")?;
    let label_col = col("anomaly").ok();
    let cols: Vec<usize> = channels.iter().map(|c| col(c)).collect::<Result<_, _>>()?;
    let mut ts = Vec::new();
    let mut labels = Vec::new();
    let mut values: Vec<Vec<f64>> = vec![Vec::new(); cols.len()];
    for (i, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(';').map(str::trim).collect();
        if f.len() < header.len() {
            continue;
        }
        ts.push(parse_time(f[t_col]).with_context(|| format!("{name} line {}", i + 2))?);
        let label = match label_col {
            Some(c) => f[c].parse::<f64>().unwrap_or(0.0) > 0.5,
            None => false,
        };
        labels.push(label);
        for (k, &c) in cols.iter().enumerate() {
            values[k].push(
                f[c].parse()
                    .with_context(|| format!("{name} line {}: `{}`", i + 2, f[c]))?,
            );
        }
    }
    let windows = runs(&labels);
    Ok(channels
        .iter()
        .zip(values)
        .map(|(c, v)| Series {
            name: format!("{name}:{c}"),
            ts: ts.clone(),
            values: v,
            windows: windows.clone(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_windows_map_to_rows() {
        assert_eq!(
            runs(&[false, true, true, false, true]),
            vec![(1, 2), (4, 4)]
        );
        let ts: Vec<Timestamp> = (0..10).map(|i| Timestamp(i * 300_000)).collect();
        let w = windows_to_rows(
            &ts,
            &[
                (Timestamp(600_000), Timestamp(1_200_000)),
                (Timestamp(100), Timestamp(200)),
            ],
        );
        assert_eq!(w, vec![(2, 4)]);
    }

    #[test]
    fn skab_rows_become_one_series_per_channel() {
        let csv = "datetime;Temperature;Thermocouple;anomaly;changepoint\n\
                   2020-03-09 10:14:33;79.3;26.0;0.0;0.0\n\
                   2020-03-09 10:14:34;79.5;26.1;1.0;1.0\n\
                   2020-03-09 10:14:35;79.6;26.1;1.0;0.0\n";
        let s = skab_series("v1/0.csv", csv, &["Temperature", "Thermocouple"]).expect("parse");
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].values, vec![26.0, 26.1, 26.1]);
        assert_eq!(s[0].windows, vec![(1, 2)]);
        assert!(s[0].name.ends_with(":Temperature"));
        assert!(skab_series("x", csv, &["Pressure"]).is_err());
    }

    #[test]
    fn a_missing_dataset_names_the_fetch_command() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = Repo::open(dir.path(), "fetch github:numenta/NAB").expect_err("empty dir");
        assert!(e.to_string().contains("fetch github:numenta/NAB"), "{e}");
    }
}
