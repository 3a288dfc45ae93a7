//! `coldaisle-collector`: the central collector daemon and its operator commands.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use coldaisle_config::CollectorConfig;
use std::path::PathBuf;
use std::process::ExitCode;

mod ops_cli;

#[derive(Debug, Parser)]
#[command(
    name = "coldaisle-collector",
    version = coldaisle_service::VERSION,
    about = "coldaisle central collector"
)]
struct Cli {
    /// Log format on stderr: `auto` = JSON under systemd or when stderr is not a terminal.
    #[arg(long, global = true, value_enum, default_value_t)]
    log_format: coldaisle_service::logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the collector until SIGTERM or Ctrl-C (SIGHUP reloads the config).
    Run {
        /// Collector config file.
        #[arg(long, short, default_value = "/etc/coldaisle/collector.toml")]
        config: PathBuf,
        /// On SIGTERM, how long ingest and the API may take to stop.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        drain_grace: std::time::Duration,
    },
    /// Load and validate a config exactly as startup does, then exit (0 = valid).
    CheckConfig {
        /// Collector config file.
        #[arg(long, short, default_value = "/etc/coldaisle/collector.toml")]
        config: PathBuf,
    },
    /// Print a mosquitto ACL generated from the agents list (`[[agents]]`, `agents_file`): each
    /// agent may write only its own site's topics.
    Acl {
        /// Collector config file.
        #[arg(long, short, default_value = "/etc/coldaisle/collector.toml")]
        config: PathBuf,
        /// The collector's MQTT user; defaults to `mqtt.username` of the config.
        #[arg(long)]
        collector_user: Option<String>,
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
        /// A stored period ending now instead of `--window`, e.g. `7d`, `30d`: rack figures
        /// then come from the roll-ups.
        #[arg(long, conflicts_with_all = ["from", "to"])]
        since: Option<String>,
        /// Start of a stored period (RFC 3339, e.g. `2026-11-01T00:00:00Z`).
        #[arg(long)]
        from: Option<String>,
        /// End of the period (RFC 3339; default now). Needs `--from`.
        #[arg(long, requires = "from")]
        to: Option<String>,
    },
    /// Act on an incident: ack, note, resolve, sla, postmortem.
    Incident {
        #[command(subcommand)]
        command: ops_cli::IncidentCommand,
        #[command(flatten)]
        api: ops_cli::ApiArgs,
    },
    /// Act on a problem: set-status, root-cause, note, postmortem.
    Problem {
        #[command(subcommand)]
        command: ops_cli::ProblemCommand,
        #[command(flatten)]
        api: ops_cli::ApiArgs,
    },
    /// Silences and maintenance windows: add, list.
    Silence {
        #[command(subcommand)]
        command: ops_cli::SilenceCommand,
        #[command(flatten)]
        api: ops_cli::ApiArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    coldaisle_collector::pager_tls::install_crypto_provider();
    let logs = match coldaisle_service::logging::init(cli.log_format, None) {
        Ok(logs) => logs,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Run {
            config,
            drain_grace,
        } => coldaisle_collector::service::run(config, drain_grace, &logs),
        Command::CheckConfig { config } => coldaisle_collector::service::load_config(&config)
            .map(|_| println!("{}: ok", config.display())),
        Command::Acl {
            config,
            collector_user,
        } => acl(&config, collector_user),
        Command::Report {
            zone,
            site,
            window,
            url,
            config,
            json,
            since,
            from,
            to,
        } => {
            let period = [("since", since), ("from", from), ("to", to)];
            report(&zone, site.as_deref(), &window, &period, url, &config, json)
        }
        Command::Incident { command, api } => ops_cli::incident(command, &api),
        Command::Problem { command, api } => ops_cli::problem(command, &api),
        Command::Silence { command, api } => ops_cli::silence(command, &api),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(coldaisle_service::exit::code_for(&e))
        }
    }
}

fn acl(config: &std::path::Path, collector_user: Option<String>) -> anyhow::Result<()> {
    let config = coldaisle_collector::service::load_config(config)?;
    let directory = coldaisle_collector::identity::AgentDirectory::from_config(&config)
        .context("loading the agents list")?;
    let Some(entries) = directory.entries() else {
        anyhow::bail!(
            "no agents list ([[agents]] or agents_file) in the config: list the agents and their \
             sites, or use the pattern ACL deploy/mosquitto/coldaisle.acl (agents confined to \
             their id, not their site)"
        );
    };
    let user = collector_user
        .or_else(|| config.raw.mqtt.username.clone())
        .context("no collector user: pass --collector-user or set mqtt.username")?;
    let entries: Vec<_> = entries.collect();
    print!(
        "{}",
        coldaisle_collector::acl::mosquitto_acl(
            &coldaisle_core::wire::Topics::new(&config.raw.mqtt.topic_prefix),
            &entries,
            &user,
            &config.raw.sites,
        )
    );
    Ok(())
}

fn report(
    zone: &str,
    site: Option<&str>,
    window: &str,
    period: &[(&str, Option<String>)],
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
    let mut request = ureq::get(&url);
    for (name, value) in period {
        if let Some(value) = value {
            request = request.query(*name, value);
        }
    }
    let mut response = request
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
