//! A simulated Modbus TCP device for tests: a real tokio-modbus server on `127.0.0.1` whose
//! holding and input register tables, one pair per unit id, tests change while it runs.
//!
//! What a client sees:
//! - function codes 3 (read holding registers) and 4 (read input registers) are answered from
//!   the tables of the request's unit id; every other function code gets the exception
//!   `IllegalFunction` (0x01);
//! - a unit id that no [`ModbusSim::set_holding`] / [`ModbusSim::set_input`] call has named gets
//!   `GatewayTargetDevice` (0x0B), what a TCP-to-RS-485 gateway answers when the addressed slave
//!   does not respond; a named unit answers even where its other table is still empty;
//! - a read of 0 or more than 125 registers gets `IllegalDataValue` (0x03);
//! - a read that covers any address never set in that table gets `IllegalDataAddress` (0x02), as
//!   real devices answer reads that span a gap in their register map;
//! - no request makes the server panic; dropping the [`ModbusSim`] stops the listener and closes
//!   every open connection.

use std::{
    collections::{BTreeMap, HashMap},
    future, io,
    net::{Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use tokio::{net::TcpListener, task::JoinHandle};
use tokio_modbus::{
    server::{
        tcp::{accept_tcp_connection, Server},
        Service,
    },
    ExceptionCode, Request, Response, SlaveId, SlaveRequest,
};

/// Most registers one read request may ask for (Modbus application protocol, 6.3 and 6.4).
pub const MAX_READ_REGISTERS: u16 = 125;

/// Register tables of one simulated unit (slave).
#[derive(Debug, Default)]
struct UnitTables {
    /// Holding registers (function code 3), by address; absent addresses are unmapped.
    holding: BTreeMap<u16, u16>,
    /// Input registers (function code 4), by address; absent addresses are unmapped.
    input: BTreeMap<u16, u16>,
}

/// State shared by the handle (which writes it) and the server's connections (which read it).
type Units = Arc<Mutex<HashMap<SlaveId, UnitTables>>>;

/// Locks the tables; a panic elsewhere while holding the lock leaves them usable, so the
/// server keeps answering instead of panicking in turn.
fn lock(units: &Units) -> MutexGuard<'_, HashMap<SlaveId, UnitTables>> {
    units.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running simulated Modbus TCP device (or gateway with several units behind it).
///
/// Dropping the handle aborts the server task, which closes the listener and every connection.
#[derive(Debug)]
pub struct ModbusSim {
    /// Where the server listens: 127.0.0.1 on a port the OS picked.
    addr: SocketAddr,
    /// The register tables, shared with the server so changes show in the next response.
    units: Units,
    /// The accept loop; aborted on drop, which also cancels the connection tasks it spawned.
    server: JoinHandle<()>,
}

impl ModbusSim {
    /// Binds `127.0.0.1:0` and starts serving, with no unit configured yet.
    ///
    /// # Errors
    ///
    /// Returns the error of binding or of reading back the bound address.
    pub async fn start() -> io::Result<ModbusSim> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let units = Units::default();
        let service = Arc::new(SimService {
            units: Arc::clone(&units),
        });
        let server = tokio::spawn(async move {
            let server = Server::new(listener);
            let new_service = |_peer| Ok(Some(Arc::clone(&service)));
            let on_connected =
                |stream, peer| async move { accept_tcp_connection(stream, peer, new_service) };
            let on_process_error = |err: io::Error| {
                tracing::debug!(error = %err, "modbus simulator connection ended with an error");
            };
            if let Err(err) = server.serve(&on_connected, on_process_error).await {
                tracing::warn!(error = %err, "modbus simulator stopped accepting connections");
            }
        });
        Ok(ModbusSim {
            addr,
            units,
            server,
        })
    }

    /// The address clients connect to.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets holding registers `addr, addr + 1, …` of `unit` to `regs` (creating the unit if
    /// needed); visible to the next request.
    ///
    /// # Panics
    ///
    /// If the registers would run past address 65535 (a mistake in the test).
    pub fn set_holding(&self, unit: SlaveId, addr: u16, regs: &[u16]) {
        let mut units = lock(&self.units);
        let tables = units.entry(unit).or_default();
        write_table(&mut tables.holding, addr, regs);
    }

    /// Sets input registers `addr, addr + 1, …` of `unit` to `regs` (creating the unit if
    /// needed); visible to the next request.
    ///
    /// # Panics
    ///
    /// If the registers would run past address 65535 (a mistake in the test).
    pub fn set_input(&self, unit: SlaveId, addr: u16, regs: &[u16]) {
        let mut units = lock(&self.units);
        let tables = units.entry(unit).or_default();
        write_table(&mut tables.input, addr, regs);
    }
}

impl Drop for ModbusSim {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Stores `regs` at consecutive addresses starting at `start`.
fn write_table(table: &mut BTreeMap<u16, u16>, start: u16, regs: &[u16]) {
    assert!(
        usize::from(start) + regs.len() <= usize::from(u16::MAX) + 1,
        "{} registers from address {start} run past 65535",
        regs.len()
    );
    for (address, &value) in (start..=u16::MAX).zip(regs) {
        table.insert(address, value);
    }
}

/// Answers every request of every connection from the shared tables.
#[derive(Debug)]
struct SimService {
    /// The tables the handle writes.
    units: Units,
}

impl Service for SimService {
    type Request = SlaveRequest<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = future::Ready<Result<Response, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        future::ready(self.answer(req.slave, &req.request))
    }
}

impl SimService {
    /// The response to `request` addressed to `unit`, or the exception to send instead.
    fn answer(&self, unit: SlaveId, request: &Request<'_>) -> Result<Response, ExceptionCode> {
        let units = lock(&self.units);
        let Some(tables) = units.get(&unit) else {
            return Err(ExceptionCode::GatewayTargetDevice);
        };
        match *request {
            Request::ReadHoldingRegisters(addr, count) => {
                read_table(&tables.holding, addr, count).map(Response::ReadHoldingRegisters)
            }
            Request::ReadInputRegisters(addr, count) => {
                read_table(&tables.input, addr, count).map(Response::ReadInputRegisters)
            }
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }
}

/// Reads `count` registers from `start`, or the exception a device would answer.
fn read_table(
    table: &BTreeMap<u16, u16>,
    start: u16,
    count: u16,
) -> Result<Vec<u16>, ExceptionCode> {
    if count == 0 || count > MAX_READ_REGISTERS {
        return Err(ExceptionCode::IllegalDataValue);
    }
    let first = u32::from(start);
    (first..first + u32::from(count))
        .map(|address| {
            u16::try_from(address)
                .ok()
                .and_then(|address| table.get(&address).copied())
                .ok_or(ExceptionCode::IllegalDataAddress)
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_modbus::{
        client::{tcp::connect_slave, Context},
        prelude::{Reader, SlaveContext, Writer},
        Slave,
    };

    async fn client(sim: &ModbusSim, unit: u8) -> Context {
        connect_slave(sim.addr(), Slave(unit)).await.unwrap()
    }

    #[tokio::test]
    async fn reads_back_holding_and_input_registers() {
        let sim = ModbusSim::start().await.unwrap();
        // APC InRow: supply air 72.0 °F as INT32 ABCD tenths at holding 92.
        sim.set_holding(1, 92, &[0x0000, 0x02D0]);
        sim.set_input(1, 92, &[0xAAAA, 0xBBBB]);
        let mut ctx = client(&sim, 1).await;
        assert_eq!(
            ctx.read_holding_registers(92, 2).await.unwrap(),
            Ok(vec![0x0000, 0x02D0])
        );
        assert_eq!(
            ctx.read_input_registers(92, 2).await.unwrap(),
            Ok(vec![0xAAAA, 0xBBBB])
        );
        assert_eq!(
            ctx.read_holding_registers(93, 1).await.unwrap(),
            Ok(vec![0x02D0])
        );
    }

    #[tokio::test]
    async fn unset_addresses_are_illegal_data_address() {
        let sim = ModbusSim::start().await.unwrap();
        sim.set_holding(1, 92, &[1, 2]);
        sim.set_holding(1, 95, &[5]);
        sim.set_holding(1, u16::MAX, &[9]);
        let mut ctx = client(&sim, 1).await;
        for (addr, count) in [(0, 1), (91, 2), (92, 4), (94, 1), (u16::MAX, 2)] {
            assert_eq!(
                ctx.read_holding_registers(addr, count).await.unwrap(),
                Err(ExceptionCode::IllegalDataAddress),
                "read {count} from {addr}"
            );
        }
        // The unit exists but its input table is empty.
        assert_eq!(
            ctx.read_input_registers(92, 1).await.unwrap(),
            Err(ExceptionCode::IllegalDataAddress)
        );
        // The connection survives exceptions.
        assert_eq!(
            ctx.read_holding_registers(u16::MAX, 1).await.unwrap(),
            Ok(vec![9])
        );
    }

    #[tokio::test]
    async fn changed_values_show_in_the_next_response() {
        let sim = ModbusSim::start().await.unwrap();
        sim.set_holding(3, 10, &[100]);
        let mut ctx = client(&sim, 3).await;
        assert_eq!(
            ctx.read_holding_registers(10, 1).await.unwrap(),
            Ok(vec![100])
        );
        sim.set_holding(3, 10, &[101, 102]);
        assert_eq!(
            ctx.read_holding_registers(10, 2).await.unwrap(),
            Ok(vec![101, 102])
        );
    }

    #[tokio::test]
    async fn unit_id_selects_the_tables() {
        let sim = ModbusSim::start().await.unwrap();
        sim.set_holding(1, 0, &[11]);
        sim.set_holding(2, 0, &[22]);
        let mut ctx = client(&sim, 1).await;
        assert_eq!(
            ctx.read_holding_registers(0, 1).await.unwrap(),
            Ok(vec![11])
        );
        ctx.set_slave(Slave(2));
        assert_eq!(
            ctx.read_holding_registers(0, 1).await.unwrap(),
            Ok(vec![22])
        );
        ctx.set_slave(Slave(7));
        assert_eq!(
            ctx.read_holding_registers(0, 1).await.unwrap(),
            Err(ExceptionCode::GatewayTargetDevice)
        );
        ctx.set_slave(Slave(1));
        assert_eq!(
            ctx.read_holding_registers(0, 1).await.unwrap(),
            Ok(vec![11])
        );
    }

    #[tokio::test]
    async fn other_functions_and_bad_counts_are_exceptions() {
        let sim = ModbusSim::start().await.unwrap();
        sim.set_holding(1, 0, &[0; 200]);
        let mut ctx = client(&sim, 1).await;
        assert_eq!(
            ctx.write_single_register(0, 1).await.unwrap(),
            Err(ExceptionCode::IllegalFunction)
        );
        assert_eq!(
            ctx.read_coils(0, 1).await.unwrap(),
            Err(ExceptionCode::IllegalFunction)
        );
        assert_eq!(
            ctx.read_holding_registers(0, MAX_READ_REGISTERS)
                .await
                .unwrap()
                .map(|regs| regs.len()),
            Ok(usize::from(MAX_READ_REGISTERS))
        );
        assert_eq!(
            ctx.read_holding_registers(0, MAX_READ_REGISTERS + 1)
                .await
                .unwrap(),
            Err(ExceptionCode::IllegalDataValue)
        );
        assert_eq!(
            ctx.read_holding_registers(0, 0).await.unwrap(),
            Err(ExceptionCode::IllegalDataValue)
        );
    }

    #[tokio::test]
    async fn garbage_frames_do_not_stop_the_server() {
        let sim = ModbusSim::start().await.unwrap();
        sim.set_holding(1, 0, &[42]);
        let frames: [&[u8]; 4] = [
            // Unknown function code 0x63 in a well-formed MBAP header.
            &[0, 1, 0, 0, 0, 2, 1, 0x63],
            // Read holding with a truncated body.
            &[0, 2, 0, 0, 0, 3, 1, 3, 0],
            // Length field far larger than what follows, then EOF.
            &[0, 3, 0, 0, 0xFF, 0xFF, 1, 3],
            // Not Modbus at all.
            b"GET / HTTP/1.1\r\n\r\n",
        ];
        for frame in frames {
            let mut stream = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
            stream.write_all(frame).await.unwrap();
            stream.shutdown().await.unwrap();
            let mut reply = Vec::new();
            // Either an exception response or a closed connection; never a hang.
            let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply))
                .await
                .unwrap();
        }
        let mut ctx = client(&sim, 1).await;
        assert_eq!(
            ctx.read_holding_registers(0, 1).await.unwrap(),
            Ok(vec![42])
        );
    }

    #[tokio::test]
    async fn drop_stops_the_server() {
        let sim = ModbusSim::start().await.unwrap();
        sim.set_holding(1, 0, &[1]);
        let addr = sim.addr();
        let mut ctx = client(&sim, 1).await;
        assert_eq!(ctx.read_holding_registers(0, 1).await.unwrap(), Ok(vec![1]));
        drop(sim);
        let stopped = async {
            loop {
                if tokio::net::TcpStream::connect(addr).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), stopped)
            .await
            .unwrap();
        let read = tokio::time::timeout(Duration::from_secs(5), ctx.read_holding_registers(0, 1))
            .await
            .unwrap();
        assert!(read.is_err(), "open connection still answered: {read:?}");
    }
}
