//! `coldaisle-agent`: the site agent daemon and its operator commands.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use coldaisle_agent::RunningAgent;
use coldaisle_config::AgentConfig;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "coldaisle-agent", version, about = "coldaisle site agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent until SIGTERM or Ctrl-C.
    Run {
        /// Agent config file.
        #[arg(long, short, default_value = "/etc/coldaisle/agent.toml")]
        config: PathBuf,
    },
    /// Load and validate a config exactly as startup does, then exit (0 = valid).
    CheckConfig {
        /// Agent config file.
        #[arg(long, short, default_value = "/etc/coldaisle/agent.toml")]
        config: PathBuf,
        /// Print the resolved devices and sensors.
        #[arg(long)]
        verbose: bool,
    },
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run(config),
        Command::CheckConfig { config, verbose } => check_config(config, verbose),
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

fn check_config(path: PathBuf, verbose: bool) -> anyhow::Result<()> {
    let config = AgentConfig::load(&path)?;
    let sensors: usize = config.devices.iter().map(|d| d.sensors.len()).sum();
    println!(
        "{}: ok (agent {}, site {}, {} devices, {} sensors)",
        path.display(),
        config.agent_id,
        config.site,
        config.devices.len(),
        sensors
    );
    if verbose {
        for device in &config.devices {
            println!(
                "device {} ({:?} {}, zone {}, every {})",
                device.id,
                device.protocol,
                device.address,
                device.location.zone,
                humantime::format_duration(device.poll_interval)
            );
            for s in &device.sensors {
                println!(
                    "  sensor {} kind={} rack={} source={:?} scale={} offset={} unit={:?} threshold={:?}",
                    s.id,
                    s.kind.as_str(),
                    s.location.rack.as_deref().unwrap_or("-"),
                    s.source,
                    s.scale,
                    s.offset,
                    s.unit,
                    s.threshold
                );
            }
        }
    }
    Ok(())
}

fn run(path: PathBuf) -> anyhow::Result<()> {
    let config = AgentConfig::load(&path)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let agent = RunningAgent::start(config)?;
        wait_for_signal().await?;
        tracing::info!("shutting down");
        agent.shutdown().await;
        Ok(())
    })
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
    }
    Ok(())
}
