//! Prometheus `snmp_exporter` (Debian package prometheus-snmp-exporter) as a benchmark peer:
//! one module `bench` that walks one table of gauges on an [`Snmpd`], scraped over HTTP on a
//! free loopback port. Used by the SNMP benchmark and the fleet benchmark's peers mode.

use crate::peers::Snmpd;
use crate::procs::free_port;
use anyhow::{ensure, Context, Result};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs the exporter.
const EXE: &str = "/usr/bin/prometheus-snmp-exporter";

/// A running exporter; killed on drop.
pub struct SnmpExporter {
    /// The exporter process.
    child: Child,
    /// The scrape URL of module `bench` for the snmpd's address.
    url: String,
    /// Holds `snmp.yml` while the exporter runs.
    _dir: tempfile::TempDir,
}

impl SnmpExporter {
    /// Starts the exporter on a module that walks `table` (every row a gauge `benchValue`) with
    /// `max_repetitions` (`None`: the exporter's default, 25), and waits up to 20 s until a
    /// scrape returns `points` values. `None` (with a message) when the package is missing:
    /// benchmarks skip a peer that is not installed.
    pub fn start(
        snmpd: &Snmpd,
        table: &str,
        max_repetitions: Option<u32>,
        points: usize,
    ) -> Result<Option<SnmpExporter>> {
        if !Path::new(EXE).exists() {
            println!("(snmp_exporter not measured: apt-get install prometheus-snmp-exporter)");
            return Ok(None);
        }
        let dir = tempfile::tempdir().context("temp dir")?;
        let config = dir.path().join("snmp.yml");
        let repetitions = max_repetitions
            .map(|n| format!("  max_repetitions: {n}\n"))
            .unwrap_or_default();
        std::fs::write(
            &config,
            format!(
                "bench:\n  version: 2\n  auth:\n    community: {}\n{repetitions}  walk:\n  - \
                 {table}\n  metrics:\n  - name: benchValue\n    oid: {table}\n    type: gauge\n    \
                 indexes:\n    - labelname: benchIndex\n      type: gauge\n",
                snmpd.community()
            ),
        )
        .context("writing snmp.yml")?;
        let port = free_port()?;
        let child = Command::new(EXE)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting prometheus-snmp-exporter")?;
        let exporter = SnmpExporter {
            child,
            url: format!(
                "http://127.0.0.1:{port}/snmp?target={}&module=bench",
                snmpd.addr()
            ),
            _dir: dir,
        };
        let up = Instant::now();
        while exporter.scrape().map_or(true, |n| n != points) {
            ensure!(
                up.elapsed() < Duration::from_secs(20),
                "snmp_exporter did not come up"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Some(exporter))
    }

    /// One scrape: the number of `benchValue` samples returned.
    pub fn scrape(&self) -> Result<usize> {
        let mut response = ureq::get(&self.url)
            .call()
            .context("scraping snmp_exporter")?;
        let body = response.body_mut().read_to_string()?;
        Ok(body
            .lines()
            .filter(|l| l.starts_with("benchValue{"))
            .count())
    }

    /// The exporter's process id (for its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for SnmpExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
