//! Modbus buses: one connection per line (a serial device, a gateway socket, a Modbus TCP
//! endpoint), shared by every device on it and used by one request at a time.
//!
//! Invariants:
//! - a bus is keyed by transport and address ([`BusSpec::key`]); all pollers of that key share
//!   one [`Bus`] (a process-wide registry of weak references: the bus closes when its last
//!   poller is dropped), so two unit ids on one RS-485 line never talk at the same time;
//! - every request holds the bus lock from the pause before it to its answer, waits
//!   `pause` after the previous request's end, and has its own deadline (tokio-modbus has none);
//! - a request that timed out, failed in transport, or was cancelled half-way (the poll's
//!   deadline dropped it) closes the connection, so a late answer can never be taken for the
//!   answer to the next request; the next request reconnects, after a backoff when connecting
//!   failed (0.5 s doubling up to 30 s).

use coldaisle_config::agent::RegisterTable;
use coldaisle_config::modbus::{Parity, SerialSettings, Transport};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use tokio::time::Instant;
use tokio_modbus::client::{Context, Reader};
use tokio_modbus::slave::SlaveContext;
use tokio_modbus::{ExceptionCode, Slave};

/// Where a bus is and how to open it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusSpec {
    /// Transport.
    pub transport: Transport,
    /// `host:port`, or the serial device path for RTU.
    pub address: String,
    /// Serial line settings (RTU only).
    pub serial: SerialSettings,
}

impl BusSpec {
    /// The registry key: devices with the same key share the bus.
    #[must_use]
    pub fn key(&self) -> String {
        format!("{}:{}", self.transport.name(), self.address)
    }
}

/// The answer to one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Registers (function codes 3 and 4).
    Registers(Vec<u16>),
    /// Bits (function codes 1 and 2).
    Bits(Vec<bool>),
}

/// Why a read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The device answered a Modbus exception (concerns the registers read, not the device).
    #[error("exception {}", describe_exception(*.0))]
    Exception(ExceptionCode),
    /// No answer within the request deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Connecting or the transport failed.
    #[error("{0}")]
    Io(String),
}

impl ReadError {
    /// Whether the failure concerns only the registers read (the connection is fine).
    #[must_use]
    pub fn is_exception(&self) -> bool {
        matches!(self, ReadError::Exception(_))
    }
}

/// An exception code with its meaning, e.g. `2 (illegal data address: no such register)`.
#[must_use]
pub fn describe_exception(code: ExceptionCode) -> String {
    let meaning = match code {
        ExceptionCode::IllegalFunction => "illegal function: the device does not support this read",
        ExceptionCode::IllegalDataAddress => {
            "illegal data address: the device has no such register"
        }
        ExceptionCode::IllegalDataValue => {
            "illegal data value: the device rejects this count or range"
        }
        ExceptionCode::ServerDeviceFailure => "server device failure",
        ExceptionCode::Acknowledge => "acknowledge: request accepted, still processing",
        ExceptionCode::ServerDeviceBusy => "server device busy: retry later",
        ExceptionCode::MemoryParityError => "memory parity error",
        ExceptionCode::GatewayPathUnavailable => "gateway path unavailable",
        ExceptionCode::GatewayTargetDevice => {
            "gateway target device failed to respond: unit id absent or dead behind the gateway"
        }
        ExceptionCode::Custom(_) => "non-standard exception code",
    };
    format!("{} ({meaning})", u8::from(code))
}

/// Mutable state of a bus, behind its lock.
#[derive(Default)]
struct BusState {
    /// The open connection, if any.
    context: Option<Context>,
    /// A request started and did not finish (cancelled): the stream may hold a late answer.
    in_flight: bool,
    /// When the last request ended, for the pause before the next.
    last_end: Option<Instant>,
    /// Connection attempts failed in a row.
    failures: u32,
    /// No connection attempt before this instant (backoff).
    retry_at: Option<Instant>,
}

/// One shared Modbus line.
pub struct Bus {
    spec: BusSpec,
    state: tokio::sync::Mutex<BusState>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus").field("spec", &self.spec).finish()
    }
}

/// The process-wide bus registry.
fn registry() -> &'static Mutex<HashMap<String, Weak<Bus>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Weak<Bus>>>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

impl Bus {
    /// The bus for `spec`, shared with every other user of the same line.
    #[must_use]
    pub fn shared(spec: BusSpec) -> Arc<Bus> {
        let key = spec.key();
        let mut map = registry().lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, weak| weak.strong_count() > 0);
        if let Some(bus) = map.get(&key).and_then(Weak::upgrade) {
            if bus.spec != spec {
                tracing::warn!(bus = %key, "devices on one line disagree on its serial settings; the first one's apply");
            }
            return bus;
        }
        let bus = Arc::new(Bus::private(spec));
        map.insert(key, Arc::downgrade(&bus));
        bus
    }

    /// A bus of its own (the CLI, tests).
    #[must_use]
    pub fn private(spec: BusSpec) -> Bus {
        Bus {
            spec,
            state: tokio::sync::Mutex::new(BusState::default()),
        }
    }

    /// Where the bus is.
    #[must_use]
    pub fn spec(&self) -> &BusSpec {
        &self.spec
    }

    /// Reads `count` values of `table` at `start` from `unit`, taking the bus for the request:
    /// waits `pause` after the previous request on the line, then allows `timeout` for the
    /// answer.
    pub async fn read(
        &self,
        unit: u8,
        table: RegisterTable,
        start: u16,
        count: u16,
        pause: Duration,
        timeout: Duration,
    ) -> Result<Reply, ReadError> {
        let mut state = self.state.lock().await;
        if state.in_flight {
            // The previous request was cancelled mid-way: its answer may still arrive.
            state.context = None;
            state.in_flight = false;
        }
        if state.context.is_none() {
            if let Some(at) = state.retry_at {
                let now = Instant::now();
                if at > now {
                    return Err(ReadError::Io(format!(
                        "{}: reconnecting in {:?} after {} failed attempts",
                        self.spec.key(),
                        at - now,
                        state.failures
                    )));
                }
            }
            match tokio::time::timeout(timeout, connect(&self.spec)).await {
                Ok(Ok(context)) => {
                    state.context = Some(context);
                    state.failures = 0;
                    state.retry_at = None;
                    tracing::debug!(bus = %self.spec.key(), "connected");
                }
                outcome => {
                    state.failures = state.failures.saturating_add(1);
                    state.retry_at = Some(Instant::now() + backoff(state.failures));
                    return Err(match outcome {
                        Ok(Err(e)) => ReadError::Io(e),
                        _ => ReadError::Timeout(timeout),
                    });
                }
            }
        }
        if let Some(last) = state.last_end {
            tokio::time::sleep_until(last + pause).await;
        }
        state.in_flight = true;
        let Some(context) = state.context.as_mut() else {
            state.in_flight = false;
            return Err(ReadError::Io("no connection".into()));
        };
        context.set_slave(Slave(unit));
        let answer = tokio::time::timeout(timeout, request(context, table, start, count)).await;
        state.in_flight = false;
        state.last_end = Some(Instant::now());
        match answer {
            Ok(Ok(Ok(reply))) => Ok(reply),
            Ok(Ok(Err(code))) => Err(ReadError::Exception(code)),
            Ok(Err(e)) => {
                state.context = None;
                Err(ReadError::Io(format!("{}: {e}", self.spec.key())))
            }
            Err(_) => {
                state.context = None;
                Err(ReadError::Timeout(timeout))
            }
        }
    }
}

/// Delay before connection attempt `failures + 1`: 0.5 s doubling, at most 30 s.
fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(6);
    (Duration::from_millis(500) * 2u32.pow(exp)).min(Duration::from_secs(30))
}

type ModbusResult<T> = Result<Result<T, ExceptionCode>, tokio_modbus::Error>;

async fn request(
    context: &mut Context,
    table: RegisterTable,
    start: u16,
    count: u16,
) -> ModbusResult<Reply> {
    let lift = |r: Result<Vec<u16>, ExceptionCode>| r.map(Reply::Registers);
    let lift_bits = |r: Result<Vec<bool>, ExceptionCode>| r.map(Reply::Bits);
    match table {
        RegisterTable::Holding => context.read_holding_registers(start, count).await.map(lift),
        RegisterTable::Input => context.read_input_registers(start, count).await.map(lift),
        RegisterTable::Coil => context.read_coils(start, count).await.map(lift_bits),
        RegisterTable::Discrete => context
            .read_discrete_inputs(start, count)
            .await
            .map(lift_bits),
    }
}

async fn connect(spec: &BusSpec) -> Result<Context, String> {
    let slave = Slave(0);
    match spec.transport {
        Transport::Tcp => {
            let addr = resolve(&spec.address).await?;
            tokio_modbus::client::tcp::connect_slave(addr, slave)
                .await
                .map_err(|e| format!("connect to {}: {e}", spec.address))
        }
        Transport::RtuOverTcp => {
            let addr = resolve(&spec.address).await?;
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect to gateway {}: {e}", spec.address))?;
            // Small RTU frames: do not let Nagle hold them back.
            let _ = stream.set_nodelay(true);
            Ok(tokio_modbus::client::rtu::attach_slave(stream, slave))
        }
        Transport::Rtu => {
            use tokio_serial::SerialPort as _;
            let s = &spec.serial;
            let port = tokio_serial::new(&spec.address, s.baud)
                .parity(match s.parity {
                    Parity::None => tokio_serial::Parity::None,
                    Parity::Even => tokio_serial::Parity::Even,
                    Parity::Odd => tokio_serial::Parity::Odd,
                })
                .data_bits(match s.data_bits {
                    5 => tokio_serial::DataBits::Five,
                    6 => tokio_serial::DataBits::Six,
                    7 => tokio_serial::DataBits::Seven,
                    _ => tokio_serial::DataBits::Eight,
                })
                .stop_bits(if s.stop_bits == 2 {
                    tokio_serial::StopBits::Two
                } else {
                    tokio_serial::StopBits::One
                });
            let stream = tokio_serial::SerialStream::open(&port)
                .map_err(|e| format!("open serial line {}: {e}", spec.address))?;
            // Drop whatever a previous, abandoned request left in the buffers.
            if let Err(e) = stream.clear(tokio_serial::ClearBuffer::All) {
                tracing::debug!(line = %spec.address, error = %e, "clearing the serial buffers failed");
            }
            Ok(tokio_modbus::client::rtu::attach_slave(stream, slave))
        }
    }
}

async fn resolve(address: &str) -> Result<SocketAddr, String> {
    tokio::net::lookup_host(address)
        .await
        .map_err(|e| format!("resolve {address}: {e}"))?
        .next()
        .ok_or_else(|| format!("{address} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(4));
        assert_eq!(backoff(100), Duration::from_secs(30));
    }

    #[test]
    fn exceptions_say_what_they_mean() {
        assert_eq!(
            describe_exception(ExceptionCode::IllegalDataAddress),
            "2 (illegal data address: the device has no such register)"
        );
        assert!(describe_exception(ExceptionCode::ServerDeviceBusy)
            .starts_with("6 (server device busy"));
        assert!(describe_exception(ExceptionCode::GatewayTargetDevice)
            .starts_with("11 (gateway target"));
        assert!(describe_exception(ExceptionCode::Custom(42)).starts_with("42 ("));
    }

    fn tcp(address: String) -> Bus {
        Bus::private(BusSpec {
            transport: Transport::Tcp,
            address,
            serial: SerialSettings::default(),
        })
    }

    #[tokio::test]
    async fn refused_connections_back_off() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let bus = tcp(address.clone());
        let t = Duration::from_millis(500);
        let first = bus
            .read(1, RegisterTable::Holding, 0, 1, Duration::ZERO, t)
            .await;
        assert!(
            matches!(&first, Err(ReadError::Io(e)) if e.contains(&address)),
            "{first:?}"
        );
        // Right after a failed attempt, no new attempt: the bus waits out its backoff.
        let second = bus
            .read(1, RegisterTable::Holding, 0, 1, Duration::ZERO, t)
            .await;
        assert!(
            matches!(&second, Err(ReadError::Io(e)) if e.contains("reconnecting in")),
            "{second:?}"
        );
    }

    #[tokio::test]
    async fn a_silent_device_times_out_and_the_next_request_reconnects() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let bus = tcp(listener.local_addr().unwrap().to_string());
        // Accept connections, read requests, never answer; count the connections.
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(socket);
            }
        });
        let t = Duration::from_millis(100);
        for _ in 0..2 {
            let answer = bus
                .read(1, RegisterTable::Input, 0, 2, Duration::ZERO, t)
                .await;
            assert_eq!(answer, Err(ReadError::Timeout(t)));
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
        // A request cancelled half-way (the device's poll deadline) leaves its connection
        // unusable: the next request opens a new one.
        let long = Duration::from_secs(5);
        let cancelled = tokio::time::timeout(
            t,
            bus.read(1, RegisterTable::Input, 0, 2, Duration::ZERO, long),
        )
        .await;
        assert!(cancelled.is_err());
        let answer = bus
            .read(1, RegisterTable::Input, 0, 2, Duration::ZERO, t)
            .await;
        assert_eq!(answer, Err(ReadError::Timeout(t)));
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 4);
    }

    #[test]
    fn shared_buses_are_one_per_line() {
        let spec = |address: &str| BusSpec {
            transport: Transport::Rtu,
            address: address.to_string(),
            serial: SerialSettings::default(),
        };
        let a = Bus::shared(spec("/dev/ttyTEST0"));
        let b = Bus::shared(spec("/dev/ttyTEST0"));
        let c = Bus::shared(spec("/dev/ttyTEST1"));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        let tcp = Bus::shared(BusSpec {
            transport: Transport::Tcp,
            ..spec("/dev/ttyTEST0")
        });
        assert!(!Arc::ptr_eq(&a, &tcp));
    }
}
