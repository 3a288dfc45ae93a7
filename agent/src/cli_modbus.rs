//! `coldaisle-agent modbus read`: reads and decodes registers of a device, for operators
//! commissioning it (which word order? which scale?), over Modbus TCP, RTU over a serial line or
//! RTU framed over TCP, with the agent's own planner, transports and decoder.
//!
//! ```text
//! coldaisle-agent modbus read --address 127.0.0.1:502 --unit 1 --holding 92 --type int32 --order ABCD --count 3
//! coldaisle-agent modbus read --serial /dev/ttyUSB0 --baud 9600 --parity N --unit 7 --input 0 --type float32 --order CDAB
//! ```

use anyhow::{bail, Context as _};
use coldaisle_agent::modbus::bus::{Bus, BusSpec, ReadError, Reply};
use coldaisle_agent::modbus::plan::{self, protocol_cap, Limits, PlanPoint};
use coldaisle_agent::modbus::poll::{decode_point, PointSpec};
use coldaisle_config::agent::RegisterTable;
use coldaisle_config::modbus::{Parity, SerialSettings, Transport};
use coldaisle_core::registers::{decode_string, RegisterType, WordOrder};
use std::time::Duration;

/// Modbus operator commands.
#[derive(Debug, clap::Subcommand)]
pub enum ModbusCommand {
    /// Read and decode consecutive values from one device, then exit (1 if any value failed).
    Read(ReadArgs),
}

/// Arguments of `modbus read`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("line").required(true).args(["address", "serial"])))]
#[command(group(clap::ArgGroup::new("table").required(true).args(["holding", "input", "coil", "discrete"])))]
pub struct ReadArgs {
    /// Modbus TCP (or RTU-over-TCP gateway) address, HOST:PORT.
    #[arg(long)]
    address: Option<String>,
    /// Speak RTU frames over the TCP connection (serial gateways in transparent mode).
    #[arg(long, requires = "address")]
    rtu_over_tcp: bool,
    /// Serial device for Modbus RTU, e.g. /dev/ttyUSB0.
    #[arg(long)]
    serial: Option<String>,
    /// Serial line speed.
    #[arg(long, default_value_t = 9600)]
    baud: u32,
    /// Serial parity: N, E or O.
    #[arg(long, default_value = "N")]
    parity: String,
    /// Serial data bits.
    #[arg(long, default_value_t = 8)]
    data_bits: u8,
    /// Serial stop bits.
    #[arg(long, default_value_t = 1)]
    stop_bits: u8,
    /// Unit id (slave id).
    #[arg(long, default_value_t = 1)]
    unit: u8,
    /// Read holding registers (fc 3) from this 0-based address.
    #[arg(long)]
    holding: Option<u16>,
    /// Read input registers (fc 4) from this 0-based address.
    #[arg(long)]
    input: Option<u16>,
    /// Read coils (fc 1) from this 0-based address.
    #[arg(long)]
    coil: Option<u16>,
    /// Read discrete inputs (fc 2) from this 0-based address.
    #[arg(long)]
    discrete: Option<u16>,
    /// Value type: int16, uint16, int32, uint32, float32, int64, uint64, float64, or string
    /// (then `--count` registers of ASCII text).
    #[arg(long = "type", default_value = "uint16")]
    data_type: String,
    /// Word order: ABCD, CDAB, BADC, DCBA.
    #[arg(long, default_value = "ABCD")]
    order: String,
    /// How many consecutive values to read.
    #[arg(long, default_value_t = 1)]
    count: u16,
    /// Multiplier shown beside the raw value.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Added after scaling.
    #[arg(long, default_value_t = 0.0)]
    offset: f64,
    /// Deadline of each request.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// Runs a Modbus operator command.
pub fn run(command: ModbusCommand) -> anyhow::Result<()> {
    match command {
        ModbusCommand::Read(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(read(args))
        }
    }
}

fn parse_name<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &str,
    known: &str,
) -> anyhow::Result<T> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|_| anyhow::anyhow!("unknown {what} `{text}`; use one of: {known}"))
}

async fn read(args: ReadArgs) -> anyhow::Result<()> {
    let (table, start) = match (args.holding, args.input, args.coil, args.discrete) {
        (Some(a), _, _, _) => (RegisterTable::Holding, a),
        (_, Some(a), _, _) => (RegisterTable::Input, a),
        (_, _, Some(a), _) => (RegisterTable::Coil, a),
        (_, _, _, Some(a)) => (RegisterTable::Discrete, a),
        _ => bail!("say which table: --holding, --input, --coil or --discrete ADDRESS"),
    };
    let names = |all: &[&str]| all.join(", ");
    // `--type string`: `--count` registers of ASCII text (model names, serial numbers).
    let string = args.data_type.eq_ignore_ascii_case("string");
    let data_type: RegisterType = if string {
        RegisterType::Uint16
    } else {
        parse_name(
            &args.data_type.to_lowercase(),
            "--type",
            &format!(
                "{}, string",
                names(&RegisterType::ALL.map(RegisterType::name))
            ),
        )?
    };
    let order: WordOrder = parse_name(
        &args.order.to_uppercase(),
        "--order",
        &names(&WordOrder::ALL.map(WordOrder::name)),
    )?;
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    let width = if table.is_bits() {
        1
    } else {
        data_type.register_count()
    };
    if u32::from(start) + u32::from(args.count) * u32::from(width) > 65_536 {
        bail!(
            "--count {} of {data_type} from {start} runs past address 65535",
            args.count
        );
    }
    let spec = match (&args.address, &args.serial) {
        (Some(address), None) => BusSpec {
            transport: if args.rtu_over_tcp {
                Transport::RtuOverTcp
            } else {
                Transport::Tcp
            },
            address: address.clone(),
            serial: SerialSettings::default(),
        },
        (None, Some(path)) => BusSpec {
            transport: Transport::Rtu,
            address: path.clone(),
            serial: SerialSettings {
                baud: args.baud,
                parity: match args.parity.to_uppercase().as_str() {
                    "N" | "NONE" => Parity::None,
                    "E" | "EVEN" => Parity::Even,
                    "O" | "ODD" => Parity::Odd,
                    other => bail!("unknown --parity `{other}`; use N, E or O"),
                },
                data_bits: args.data_bits,
                stop_bits: args.stop_bits,
            },
        },
        _ => bail!("give either --address HOST:PORT or --serial DEVICE"),
    };
    let pause = if spec.transport == Transport::Rtu {
        spec.serial.frame_gap()
    } else {
        Duration::ZERO
    };
    let points: Vec<PointSpec> = (0..args.count)
        .map(|i| PointSpec {
            at: PlanPoint {
                table,
                address: start + i * width,
                count: width,
            },
            data_type,
            order,
            bit: None,
        })
        .collect();
    let at: Vec<PlanPoint> = points.iter().map(|p| p.at).collect();
    let limits = Limits {
        max_gap: 0,
        max_span: protocol_cap(table),
        holes: Vec::new(),
    };
    let bus = Bus::private(spec);
    if string {
        if table.is_bits() || args.count > protocol_cap(table) {
            bail!(
                "--type string reads 1..={} holding or input registers",
                protocol_cap(table)
            );
        }
        let label = format!("{table:?} {start}").to_lowercase();
        return match bus
            .read(args.unit, table, start, args.count, pause, args.timeout)
            .await
        {
            Ok(Reply::Registers(registers)) if registers.len() == usize::from(args.count) => {
                println!(
                    "{label} string[{}] = {:?}",
                    args.count,
                    decode_string(&registers, order)
                );
                Ok(())
            }
            Ok(other) => bail!("{label}: unexpected reply {other:?}"),
            Err(e) => bail!("{label}: {e}"),
        };
    }
    let mut failed = 0;
    for read in plan::plan(&at, &limits) {
        let reply = bus
            .read(
                args.unit,
                table,
                read.start,
                read.count,
                pause,
                args.timeout,
            )
            .await;
        for &i in &read.points {
            let point = &points[i];
            let label = format!("{table:?} {}", point.at.address).to_lowercase();
            let line = match &reply {
                Ok(reply) => {
                    match decode_point(point, &read, reply) {
                        Ok(raw) => {
                            let shown = raw * args.scale + args.offset;
                            let words = raw_words(reply, &read, &point.at);
                            if table.is_bits() {
                                format!("{label} = {raw}")
                            } else {
                                format!("{label} {data_type} {order} = {raw} (scaled {shown}) [{words}]")
                            }
                        }
                        Err(e) => {
                            failed += 1;
                            format!("{label}: {e}")
                        }
                    }
                }
                Err(e @ ReadError::Exception(_)) => {
                    failed += 1;
                    format!("{label}: {e}")
                }
                Err(e) => bail!("unit {} on {}: {e}", args.unit, bus.spec().key()),
            };
            println!("{line}");
        }
    }
    if failed > 0 {
        bail!("{failed} of {} values could not be read", args.count);
    }
    Ok(())
}

/// The raw registers of one value, in hex, as the device sent them.
fn raw_words(reply: &Reply, read: &plan::Read, at: &PlanPoint) -> String {
    match reply {
        Reply::Registers(block) => plan::slice(read, block, at)
            .map(|regs| {
                regs.iter()
                    .map(|r| format!("0x{r:04X}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default(),
        Reply::Bits(_) => String::new(),
    }
}

/// Prints a Modbus device's transport and request plan (`check-config --verbose`).
pub fn print_plan(device: &coldaisle_config::Device) -> anyhow::Result<()> {
    let m = &device.modbus;
    println!(
        "  modbus transport={} unit={} max_gap={} max_span={} pause={} request_timeout={} holes={}",
        m.transport.name(),
        device.unit_id,
        m.max_gap,
        m.max_span,
        humantime::format_duration(m.pause),
        humantime::format_duration(m.request_timeout),
        m.holes.len()
    );
    let plan = coldaisle_agent::modbus::poll::describe_plan(device)
        .with_context(|| format!("planning the reads of device {}", device.id))?;
    for line in plan.lines() {
        println!("  {line}");
    }
    Ok(())
}
