//! `coldaisle-agent`: the site agent daemon and its operator commands.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod cli_modbus;
mod cli_snmp;

#[derive(Debug, Parser)]
#[command(name = "coldaisle-agent", version = coldaisle_service::VERSION, about = "coldaisle site agent")]
struct Cli {
    /// Log format on stderr: `auto` = JSON under systemd or when stderr is not a terminal.
    #[arg(long, global = true, value_enum, default_value_t)]
    log_format: coldaisle_service::logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent until SIGTERM or Ctrl-C (SIGHUP reloads the config).
    Run {
        /// Agent config file.
        #[arg(long, short, default_value = "/etc/coldaisle/agent.toml")]
        config: PathBuf,
        /// On SIGTERM, how long to wait for the collector's acks of the outbox.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        drain_grace: std::time::Duration,
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
    /// Read registers of a Modbus device (commissioning).
    #[command(subcommand)]
    Modbus(cli_modbus::ModbusCommand),
    /// Ask an SNMP device (get, walk, probe) with net-snmp's flags.
    #[command(subcommand)]
    Snmp(cli_snmp::SnmpCommand),
    /// Replay a CSV of `timestamp,value` through a sensor's detectors (JSON lines out).
    Replay(coldaisle_agent::replay::ReplayArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        } => coldaisle_agent::service::run(config, drain_grace, &logs),
        Command::CheckConfig { config, verbose } => check_config(config, verbose),
        Command::Modbus(command) => cli_modbus::run(command),
        Command::Snmp(command) => cli_snmp::run(command),
        Command::Replay(args) => coldaisle_agent::replay::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(coldaisle_service::exit::code_for(&e))
        }
    }
}

fn check_config(path: PathBuf, verbose: bool) -> anyhow::Result<()> {
    let config = coldaisle_agent::service::load_config(&path)?;
    for warning in coldaisle_config::warnings::agent_warnings(&config) {
        eprintln!("warning: {}: {warning}", path.display());
    }
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
        for (i, device) in config.devices.iter().enumerate() {
            println!(
                "device {} ({:?} {}, zone {}, every {})",
                device.id,
                device.protocol,
                device.address,
                device.location.zone,
                humantime::format_duration(device.poll_interval)
            );
            for (j, s) in device.sensors.iter().enumerate() {
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
                let detectors = coldaisle_agent::pipeline::sensor_detectors(&config, i, j);
                println!("    detectors {}", detectors.detector_names().join(", "));
            }
            if device.protocol == coldaisle_config::Protocol::Modbus {
                cli_modbus::print_plan(device)?;
            }
        }
    }
    Ok(())
}
