//! `coldaisle-demo`: the README's first command. `cargo run --release -- demo` runs a simulated
//! colo site (SNMP PDUs and a Modbus InRow cooler on loopback), an embedded MQTT broker, one
//! agent and one collector, plays a time-compressed scenario — zone Z1 overheats three times
//! (an airflow problem), zone Z2 has one isolated spike — and ends with the zone reports and
//! the single problem record for Z1. With `--serve` the site keeps running afterwards and the
//! collector's web dashboard stays up until Ctrl-C.

mod broker;
mod scenario;
mod site;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "coldaisle-demo", version, about = "coldaisle end-to-end demo")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the simulated site end to end and print the zone report and problem records.
    Demo {
        /// Keep the demo's state directory instead of deleting it.
        #[arg(long)]
        keep_state: bool,
        /// After the story, keep the simulated site, agent and collector running and print the
        /// web dashboard's URL; Ctrl-C ends the demo.
        #[arg(long)]
        serve: bool,
    },
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rumqttd=off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let Command::Demo { keep_state, serve } = Cli::parse().command;
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(scenario::run(keep_state, serve)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
