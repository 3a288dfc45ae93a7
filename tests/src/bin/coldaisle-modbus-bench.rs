//! Modbus polling benchmark against the real pymodbus 3.16.1 server: registers/s and latency of
//! one poll and of one request, with request merging and with one read per point, over Modbus
//! TCP and over RTU on a socat pty pair.
//!
//! ```text
//! cargo run -p coldaisle-testkit --bin coldaisle-modbus-bench -- [POINTS] [SECONDS]
//! ```
//!
//! `POINTS` int32 points (2 registers each, back to back from holding register 0; default 60 =
//! 120 registers) are polled for `SECONDS` (default 5) per case.

use anyhow::{Context, Result};
use coldaisle_agent::modbus::poll::ModbusPoller;
use coldaisle_config::AgentConfig;
use coldaisle_core::registers::{encode, RegisterType, WordOrder};
use coldaisle_testkit::peers::{PyModbus, PyModbusLink};
use std::path::Path;
use std::time::{Duration, Instant};

fn config(address: &str, settings: &str, points: u16) -> Result<AgentConfig> {
    let mut text = format!(
        "agent_id = \"bench\"\nsite = \"lab\"\nstate_dir = \"/tmp/unused\"\n[mqtt]\nhost = \"h\"\n\
         username = \"u\"\npassword = \"p\"\n[[devices]]\nid = \"dev\"\nprotocol = \"modbus\"\n\
         address = \"{address}\"\nzone = \"Z1\"\npoll_interval = \"10s\"\ntimeout = \"5s\"\n\
         [devices.modbus]\n{settings}\n"
    );
    for i in 0..points {
        text.push_str(&format!(
            "[[devices.points]]\nsensor = \"p{i}\"\nkind = \"temperature\"\nregister = {}\ntype = \"int32\"\n",
            i * 2
        ));
    }
    AgentConfig::from_str(&text, Path::new("bench.toml")).context("bench config")
}

/// Polls for `budget` and prints one result line.
async fn run_case(
    label: &str,
    poller: &mut ModbusPoller,
    points: u16,
    budget: Duration,
) -> Result<()> {
    let requests = poller.requests_per_poll();
    let mut latencies = Vec::new();
    let started = Instant::now();
    while started.elapsed() < budget {
        let t = Instant::now();
        let readings = poller.poll().await?;
        latencies.push(t.elapsed());
        anyhow::ensure!(readings.iter().all(Result::is_ok), "{label}: {readings:?}");
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    let polls = latencies.len() as f64;
    let mean_poll = elapsed / polls * 1e3;
    println!(
        "| {label} | {requests} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
        polls * f64::from(points) * 2.0 / elapsed,
        mean_poll,
        pct(0.5),
        pct(0.99),
        mean_poll / requests as f64,
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let points: u16 = args.next().map_or(Ok(60), |a| a.parse())?;
    let budget = Duration::from_secs(args.next().map_or(Ok(5), |a| a.parse())?);
    println!("| case | requests/poll | registers/s | mean poll ms | p50 poll ms | p99 poll ms | mean request ms |");
    println!("|---|---|---|---|---|---|---|");
    for link in [PyModbusLink::Tcp, PyModbusLink::Serial { baud: 115_200 }] {
        let server = PyModbus::start_with(&[1], link)?;
        for i in 0..points {
            server.set_holding(
                1,
                i * 2,
                &encode(f64::from(i) * 10.0, RegisterType::Int32, WordOrder::Abcd),
            )?;
        }
        let (address, transport, name) = match server.serial_path() {
            Some(path) => (
                path.display().to_string(),
                "transport = \"rtu\"\n[devices.modbus.serial]\nbaud = 115200",
                "RTU (pty)",
            ),
            None => (server.addr().to_string(), "transport = \"tcp\"", "TCP"),
        };
        for (merge, settings) in [
            ("merged", String::new()),
            ("one read per point", "max_span = 1\n".to_string()),
        ] {
            let c = config(&address, &format!("{settings}{transport}"), points)?;
            let mut poller = ModbusPoller::new(&c.devices[0])?;
            run_case(&format!("{name}, {merge}"), &mut poller, points, budget).await?;
        }
    }
    Ok(())
}
