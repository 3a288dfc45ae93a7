//! Polling one Modbus TCP device: one read per point (request merging comes with the Modbus
//! planner). The connection is kept between polls and dropped after any transport failure;
//! an exception answer (illegal address, busy, ...) fails only its own point.

use crate::poller::{PointReading, PollError};
use coldaisle_config::agent::RegisterTable;
use coldaisle_config::{Device, SensorSource};
use coldaisle_core::registers::{decode, RegisterType, WordOrder};
use std::net::SocketAddr;
use tokio_modbus::client::{Context, Reader};
use tokio_modbus::Slave;

/// Where one point's registers are.
#[derive(Debug, Clone, Copy)]
struct PointAddress {
    table: RegisterTable,
    register: u16,
    data_type: RegisterType,
    order: WordOrder,
}

/// A poller for one Modbus TCP device.
pub struct ModbusPoller {
    address: String,
    unit_id: u8,
    points: Vec<PointAddress>,
    context: Option<Context>,
}

impl std::fmt::Debug for ModbusPoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModbusPoller")
            .field("address", &self.address)
            .field("unit_id", &self.unit_id)
            .field("points", &self.points)
            .finish()
    }
}

impl ModbusPoller {
    /// A poller for `device`.
    pub fn new(device: &Device) -> Result<ModbusPoller, PollError> {
        let mut points = Vec::new();
        for sensor in &device.sensors {
            let SensorSource::Modbus {
                table,
                register,
                data_type,
                order,
            } = sensor.source
            else {
                return Err(PollError::Config(format!(
                    "sensor {} of Modbus device {} has no register",
                    sensor.id, device.id
                )));
            };
            points.push(PointAddress {
                table,
                register,
                data_type,
                order,
            });
        }
        Ok(ModbusPoller {
            address: device.address.clone(),
            unit_id: device.unit_id,
            points,
            context: None,
        })
    }

    /// Forgets the connection (after a timeout or error).
    pub fn reset(&mut self) {
        self.context = None;
    }

    /// Reads every point.
    pub async fn poll(&mut self) -> Result<Vec<PointReading>, PollError> {
        let result = self.poll_inner().await;
        if result.is_err() {
            self.context = None;
        }
        result
    }

    async fn poll_inner(&mut self) -> Result<Vec<PointReading>, PollError> {
        if self.context.is_none() {
            let addr = resolve(&self.address).await?;
            let context = tokio_modbus::client::tcp::connect_slave(addr, Slave(self.unit_id))
                .await
                .map_err(|e| PollError::Io(format!("connect to {}: {e}", self.address)))?;
            self.context = Some(context);
        }
        let Some(context) = self.context.as_mut() else {
            return Err(PollError::Io("no connection".into()));
        };
        let mut readings = Vec::with_capacity(self.points.len());
        for point in &self.points {
            let count = point.data_type.register_count();
            let answer = match point.table {
                RegisterTable::Holding => {
                    context.read_holding_registers(point.register, count).await
                }
                RegisterTable::Input => context.read_input_registers(point.register, count).await,
            };
            let reading = match answer {
                Err(e) => {
                    return Err(PollError::Io(format!(
                        "read register {} from {}: {e}",
                        point.register, self.address
                    )))
                }
                Ok(Err(exception)) => Err(format!(
                    "device answered exception {exception} for register {}",
                    point.register
                )),
                Ok(Ok(registers)) => decode(&registers, point.data_type, point.order)
                    .map_err(|e| format!("register {}: {e}", point.register)),
            };
            readings.push(reading);
        }
        Ok(readings)
    }
}

async fn resolve(address: &str) -> Result<SocketAddr, PollError> {
    tokio::net::lookup_host(address)
        .await
        .map_err(|e| PollError::Io(format!("resolve {address}: {e}")))?
        .next()
        .ok_or_else(|| PollError::Io(format!("{address} resolves to no address")))
}
