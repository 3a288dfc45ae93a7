//! `coldaisle-collector`: the central collector daemon and its operator commands.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use coldaisle_collector::RunningCollector;
use coldaisle_config::CollectorConfig;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "coldaisle-collector",
    version,
    about = "coldaisle central collector"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the collector until SIGTERM or Ctrl-C.
    Run {
        /// Collector config file.
        #[arg(long, short, default_value = "/etc/coldaisle/collector.toml")]
        config: PathBuf,
    },
    /// Load and validate a config exactly as startup does, then exit (0 = valid).
    CheckConfig {
        /// Collector config file.
        #[arg(long, short, default_value = "/etc/coldaisle/collector.toml")]
        config: PathBuf,
    },
    /// Print a zone report from a running collector's HTTP API.
    Report {
        /// Zone to report on.
        #[arg(long)]
        zone: String,
        /// Site of the zone (needed when several sites have a zone of that name).
        #[arg(long)]
        site: Option<String>,
        /// Report window, e.g. `24h`, `7d`.
        #[arg(long, default_value = "24h")]
        window: String,
        /// Collector API base URL; defaults to the `http.listen` of `--config`.
        #[arg(long)]
        url: Option<String>,
        /// Collector config file (for the API address).
        #[arg(long, short, default_value = "/etc/coldaisle/collector.toml")]
        config: PathBuf,
        /// Print the raw JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run(config),
        Command::CheckConfig { config } => CollectorConfig::load(&config)
            .map(|_| println!("{}: ok", config.display()))
            .map_err(Into::into),
        Command::Report {
            zone,
            site,
            window,
            url,
            config,
            json,
        } => report(&zone, site.as_deref(), &window, url, &config, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn run(path: PathBuf) -> anyhow::Result<()> {
    let config = CollectorConfig::load(&path)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let collector = RunningCollector::start(config).await?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            _ = term.recv() => {}
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        }
        tracing::info!("shutting down");
        collector.shutdown().await;
        Ok(())
    })
}

fn report(
    zone: &str,
    site: Option<&str>,
    window: &str,
    url: Option<String>,
    config: &std::path::Path,
    json: bool,
) -> anyhow::Result<()> {
    let base = match url {
        Some(u) => u,
        None => {
            let config =
                CollectorConfig::load(config).context("reading the API address (or pass --url)")?;
            format!("http://{}", config.raw.http.listen)
        }
    };
    let mut url = format!(
        "{}/api/v1/zones/{zone}/report?window={window}",
        base.trim_end_matches('/')
    );
    if let Some(site) = site {
        url.push_str(&format!("&site={site}"));
    }
    let mut response = ureq::get(&url)
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .with_context(|| format!("asking the collector at {base}"))?;
    let status = response.status();
    let body = response
        .body_mut()
        .read_to_string()
        .context("reading the collector's answer")?;
    if !status.is_success() {
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or(body);
        anyhow::bail!("collector answered {status}: {message}");
    }
    if json {
        println!("{body}");
        return Ok(());
    }
    let report: coldaisle_collector::report::ZoneReport =
        serde_json::from_str(&body).context("decoding the zone report")?;
    print!(
        "{}",
        coldaisle_collector::render::render_zone_report(&report)
    );
    Ok(())
}
