//! `coldaisle-collector`: the central collector daemon and its operator commands.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod ops_cli;
mod report_cli;

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
    /// Print the facility report of a zone (or a whole site) over a period, from a running
    /// collector's HTTP API: `--since 24h` (default) or `--from`/`--to`, `--format
    /// table|json|markdown|csv`.
    Report(report_cli::ReportArgs),
    /// Summarise the agents: online or offline, last seen, lag, clock skew, dropped records.
    Status(report_cli::StatusArgs),
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
    /// API tokens: `token new NAME` prints a random token (line 1, for the client) and its
    /// line for `http.tokens_file` (line 2, holding only the token's hash).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Silences and maintenance windows: add, list.
    Silence {
        #[command(subcommand)]
        command: ops_cli::SilenceCommand,
        #[command(flatten)]
        api: ops_cli::ApiArgs,
    },
    /// Copy a stopped collector's sled store into PostgreSQL: every tree, idempotent (rerun
    /// with --force to finish an interrupted copy), counts verified at the end.
    Migrate {
        /// `sled:<dir>`: the sled store directory (the collector's `state_dir/store`).
        #[arg(long)]
        from: String,
        /// `postgres:<url>` (password from $PGPASSWORD) or `postgres:<collector config>` (its
        /// `[store]` url, password_file and ca_file).
        #[arg(long)]
        to: String,
        /// Copy into a target that already holds data (resumes an interrupted copy).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a random token.
    New {
        /// The token's name: the actor of the actions taken with it.
        name: String,
        /// `read`, `operate` or `read,operate`.
        #[arg(long, default_value = "read")]
        scopes: String,
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
        Command::CheckConfig { config } => check_config(&config),
        Command::Acl {
            config,
            collector_user,
        } => acl(&config, collector_user),
        Command::Report(args) => report_cli::report(&args),
        Command::Status(args) => report_cli::status(&args),
        Command::Token {
            command: TokenCommand::New { name, scopes },
        } => new_token(&name, &scopes),
        Command::Incident { command, api } => ops_cli::incident(command, &api),
        Command::Problem { command, api } => ops_cli::problem(command, &api),
        Command::Silence { command, api } => ops_cli::silence(command, &api),
        Command::Migrate { from, to, force } => {
            coldaisle_collector::migrate::run(&from, &to, force)
        }
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

/// `check-config`: loads as startup does, prints the warnings (stderr) and `ok`.
fn check_config(path: &std::path::Path) -> anyhow::Result<()> {
    let config = coldaisle_collector::service::load_config(path)?;
    for warning in coldaisle_config::warnings::collector_warnings(&config) {
        eprintln!("warning: {}: {warning}", path.display());
    }
    println!("{}: ok", path.display());
    Ok(())
}

fn new_token(name: &str, scopes: &str) -> anyhow::Result<()> {
    use coldaisle_collector::auth::{hash_token, to_hex, TokenBook};
    use std::io::Read as _;
    if name.is_empty() || name.contains(char::is_whitespace) {
        anyhow::bail!("a token name must be non-empty and hold no spaces: {name:?}");
    }
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    let token = to_hex(&bytes);
    let line = format!("{name} {scopes} {}", to_hex(&hash_token(&token)));
    // The same parser as the collector's: a bad scope fails here, not at the next reload.
    TokenBook::parse(&line, std::path::Path::new("<new token>"))?;
    println!("{token}\n{line}");
    Ok(())
}
