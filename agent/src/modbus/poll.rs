//! Polling one Modbus device: executes its request plan ([`super::plan`]) on its bus
//! ([`super::bus`]) and decodes every point.
//!
//! Failure isolation:
//! - an exception answer fails only the points of that read; when a merged read (several
//!   points) is refused with "illegal data address" or "illegal data value", its points are read
//!   one by one right away, and that read stays split for the poller's life, so one bad
//!   register never poisons its neighbours;
//! - a timeout or transport failure means the device (or its line) is not answering: the poll
//!   fails as a whole (one `device` event), the bus reconnects on the next request.

use crate::modbus::bus::{describe_exception, Bus, BusSpec, ReadError, Reply};
use crate::modbus::plan::{self, Limits, PlanPoint, Read};
use crate::poller::{PointReading, PollError};
use coldaisle_config::{Device, SensorSource};
use coldaisle_core::registers::{decode, RegisterType, WordOrder};
use std::sync::Arc;
use std::time::Duration;
use tokio_modbus::ExceptionCode;

/// How one point is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointSpec {
    /// Where it is.
    pub at: PlanPoint,
    /// Data type (ignored for bit tables: a bit reads 0 or 1).
    pub data_type: RegisterType,
    /// Word order.
    pub order: WordOrder,
    /// One bit of the integer value (alarm/status words), read as 0 or 1.
    pub bit: Option<u8>,
}

/// The points of a Modbus device, in its sensor order.
///
/// # Errors
///
/// A sensor without a Modbus source (a config bug) is [`PollError::Config`].
pub fn device_points(device: &Device) -> Result<Vec<PointSpec>, PollError> {
    device
        .sensors
        .iter()
        .map(|sensor| match sensor.source {
            SensorSource::Modbus {
                table,
                register,
                data_type,
                order,
                bit,
            } => Ok(PointSpec {
                at: PlanPoint {
                    table,
                    address: register,
                    count: if table.is_bits() {
                        1
                    } else {
                        data_type.register_count()
                    },
                },
                data_type,
                order,
                bit,
            }),
            SensorSource::Snmp { .. } => Err(PollError::Config(format!(
                "sensor {} of Modbus device {} has no register",
                sensor.id, device.id
            ))),
        })
        .collect()
}

/// The request plan of a Modbus device, as `check-config --verbose` prints it.
///
/// # Errors
///
/// As [`device_points`].
pub fn describe_plan(device: &Device) -> Result<String, PollError> {
    let points = device_points(device)?;
    let at: Vec<PlanPoint> = points.iter().map(|p| p.at).collect();
    let names: Vec<String> = device.sensors.iter().map(|s| s.id.clone()).collect();
    let reads = plan::plan(&at, &Limits::from_settings(&device.modbus));
    Ok(plan::describe(&reads, &at, &names))
}

/// Decodes one point from the values its read returned.
pub fn decode_point(point: &PointSpec, read: &Read, reply: &Reply) -> PointReading {
    let what =
        |e: &dyn std::fmt::Display| format!("{:?} {}: {e}", point.at.table, point.at.address);
    match reply {
        Reply::Registers(block) => {
            let registers = plan::slice(read, block, &point.at).map_err(|e| what(&e))?;
            let value = decode(registers, point.data_type, point.order).map_err(|e| what(&e))?;
            Ok(match point.bit {
                // Config allows bits of 16- and 32-bit integers only: exact in an i64.
                Some(bit) if bit < 64 => ((value as i64 >> bit) & 1) as f64,
                Some(_) => return Err(what(&"bit index out of range")),
                None => value,
            })
        }
        Reply::Bits(block) => {
            let bits = plan::slice(read, block, &point.at).map_err(|e| what(&e))?;
            match bits {
                [bit] => Ok(if *bit { 1.0 } else { 0.0 }),
                _ => Err(what(&"expected one bit")),
            }
        }
    }
}

/// A poller for one Modbus device.
#[derive(Debug)]
pub struct ModbusPoller {
    device_id: String,
    unit_id: u8,
    bus: Arc<Bus>,
    points: Vec<PointSpec>,
    reads: Vec<Read>,
    /// Per read: refused as a whole once, now read point by point.
    split: Vec<bool>,
    pause: Duration,
    request_timeout: Duration,
}

impl ModbusPoller {
    /// A poller for `device`, on the bus shared by every device of its line.
    ///
    /// # Errors
    ///
    /// As [`device_points`].
    pub fn new(device: &Device) -> Result<ModbusPoller, PollError> {
        let points = device_points(device)?;
        let at: Vec<PlanPoint> = points.iter().map(|p| p.at).collect();
        let reads = plan::plan(&at, &Limits::from_settings(&device.modbus));
        let bus = Bus::shared(BusSpec {
            transport: device.modbus.transport,
            address: device.address.clone(),
            serial: device.modbus.serial,
        });
        Ok(ModbusPoller {
            device_id: device.id.clone(),
            unit_id: device.unit_id,
            bus,
            split: vec![false; reads.len()],
            points,
            reads,
            pause: device.modbus.pause,
            request_timeout: device.modbus.request_timeout,
        })
    }

    /// How many requests one poll makes now (reads split after a refusal count per point).
    #[must_use]
    pub fn requests_per_poll(&self) -> usize {
        self.reads
            .iter()
            .zip(&self.split)
            .map(|(r, &split)| if split { r.points.len() } else { 1 })
            .sum()
    }

    /// Nothing to forget: the bus closes a connection that a cancelled poll left half-used.
    pub fn reset(&mut self) {}

    /// Reads every point, in the device's sensor order.
    ///
    /// # Errors
    ///
    /// [`PollError::Timeout`] or [`PollError::Io`] when the device or its line does not answer.
    pub async fn poll(&mut self) -> Result<Vec<PointReading>, PollError> {
        let mut readings: Vec<PointReading> = vec![Err("not read".to_string()); self.points.len()];
        for r in 0..self.reads.len() {
            let read = self.reads[r].clone();
            if !self.split[r] {
                match self.read(&read).await {
                    Ok(reply) => {
                        for &i in &read.points {
                            readings[i] = decode_point(&self.points[i], &read, &reply);
                        }
                        continue;
                    }
                    Err(ReadError::Exception(code))
                        if read.points.len() > 1 && refuses_range(code) =>
                    {
                        tracing::info!(
                            device = %self.device_id,
                            table = ?read.table,
                            start = read.start,
                            count = read.count,
                            exception = %describe_exception(code),
                            "merged read refused; reading its points one by one from now on"
                        );
                        self.split[r] = true;
                    }
                    Err(e) => {
                        let message = self.failure(&read, &e)?;
                        for &i in &read.points {
                            readings[i] = Err(message.clone());
                        }
                        continue;
                    }
                }
            }
            for &i in &read.points {
                let single = Read {
                    table: read.table,
                    start: self.points[i].at.address,
                    count: self.points[i].at.count,
                    points: vec![i],
                };
                readings[i] = match self.read(&single).await {
                    Ok(reply) => decode_point(&self.points[i], &single, &reply),
                    Err(e) => Err(self.failure(&single, &e)?),
                };
            }
        }
        Ok(readings)
    }

    async fn read(&self, read: &Read) -> Result<Reply, ReadError> {
        self.bus
            .read(
                self.unit_id,
                read.table,
                read.start,
                read.count,
                self.pause,
                self.request_timeout,
            )
            .await
    }

    /// A point-level message for an exception; a device-level error otherwise.
    fn failure(&self, read: &Read, error: &ReadError) -> Result<String, PollError> {
        let what = format!(
            "{:?} {}..={} of unit {} on {}",
            read.table,
            read.start,
            u32::from(read.start) + u32::from(read.count.max(1)) - 1,
            self.unit_id,
            self.bus.spec().key()
        );
        match error {
            ReadError::Exception(_) => Ok(format!("{what}: {error}")),
            ReadError::Timeout(t) => {
                tracing::debug!(device = %self.device_id, read = %what, "request timed out");
                Err(PollError::Timeout(*t))
            }
            ReadError::Io(e) => Err(PollError::Io(format!("{what}: {e}"))),
        }
    }
}

/// Exceptions that refuse the address range (a merged read may cover a register the device does
/// not have), as opposed to transient ones (busy) that say nothing about the range.
fn refuses_range(code: ExceptionCode) -> bool {
    matches!(
        code,
        ExceptionCode::IllegalDataAddress | ExceptionCode::IllegalDataValue
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use coldaisle_config::agent::RegisterTable;
    use proptest::prelude::*;

    fn spec(address: u16, data_type: RegisterType) -> PointSpec {
        PointSpec {
            at: PlanPoint {
                table: RegisterTable::Holding,
                address,
                count: data_type.register_count(),
            },
            data_type,
            order: WordOrder::Abcd,
            bit: None,
        }
    }

    #[test]
    fn points_decode_from_their_place_in_a_merged_block() {
        let read = Read {
            table: RegisterTable::Holding,
            start: 92,
            count: 6,
            points: vec![0, 1, 2],
        };
        let reply = Reply::Registers(vec![0, 720, 0xFFFF, 0xFFF6, 0, 680]);
        assert_eq!(
            decode_point(&spec(92, RegisterType::Int32), &read, &reply),
            Ok(720.0)
        );
        assert_eq!(
            decode_point(&spec(94, RegisterType::Int32), &read, &reply),
            Ok(-10.0)
        );
        let short = Reply::Registers(vec![0, 720]);
        let err = decode_point(&spec(96, RegisterType::Int32), &read, &short).unwrap_err();
        assert!(
            err.contains("Holding 96") && err.contains("holds 2 values"),
            "{err}"
        );
    }

    #[test]
    fn bit_points_name_states_of_an_alarm_word() {
        let read = Read {
            table: RegisterTable::Holding,
            start: 30,
            count: 1,
            points: vec![],
        };
        let reply = Reply::Registers(vec![0b1000_0000_0000_0101]);
        let states: Vec<PointReading> = [0, 1, 2, 15]
            .into_iter()
            .map(|bit| {
                let point = PointSpec {
                    bit: Some(bit),
                    ..spec(30, RegisterType::Uint16)
                };
                decode_point(&point, &read, &reply)
            })
            .collect();
        assert_eq!(states, [Ok(1.0), Ok(0.0), Ok(1.0), Ok(1.0)]);
        // A signed word's sign bit reads 1 as well.
        let point = PointSpec {
            bit: Some(15),
            ..spec(30, RegisterType::Int16)
        };
        assert_eq!(decode_point(&point, &read, &reply), Ok(1.0));
    }

    #[test]
    fn bits_read_as_zero_or_one() {
        let read = Read {
            table: RegisterTable::Coil,
            start: 0,
            count: 3,
            points: vec![],
        };
        let point = |address| PointSpec {
            at: PlanPoint {
                table: RegisterTable::Coil,
                address,
                count: 1,
            },
            data_type: RegisterType::Uint16,
            order: WordOrder::Abcd,
            bit: None,
        };
        let reply = Reply::Bits(vec![false, true, false]);
        assert_eq!(decode_point(&point(1), &read, &reply), Ok(1.0));
        assert_eq!(decode_point(&point(2), &read, &reply), Ok(0.0));
    }

    proptest! {
        /// Whatever block a device answers to a merged read, decoding each point returns a value
        /// or an error and never panics.
        #[test]
        fn decoding_any_block_never_panics(
            block in prop::collection::vec(any::<u16>(), 0..12),
            start in 0u16..4,
            count in 0u16..12,
            address in 0u16..12,
            ty in prop::sample::select(RegisterType::ALL.to_vec()),
            order in prop::sample::select(WordOrder::ALL.to_vec()),
        ) {
            let read = Read { table: RegisterTable::Input, start, count, points: vec![] };
            let point = PointSpec {
                at: PlanPoint { table: RegisterTable::Input, address, count: ty.register_count() },
                data_type: ty,
                order,
                bit: None,
            };
            if let Ok(v) = decode_point(&point, &read, &Reply::Registers(block.clone())) {
                prop_assert!(v.is_finite());
            }
            let bits: Vec<bool> = block.iter().map(|r| r % 2 == 1).collect();
            let _ = decode_point(&point, &read, &Reply::Bits(bits));
        }
    }
}
