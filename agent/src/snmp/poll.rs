//! Polling one SNMP v2c device: GET of every configured OID, in requests of at most
//! [`MAX_OIDS_PER_REQUEST`] OIDs. The session is recreated after any failure so a late answer
//! to a timed-out request can never be mistaken for the next one.

use super::value::numeric;
use crate::poller::{PointReading, PollError};
use coldaisle_config::{Device, SensorSource};
use snmp2::{AsyncSession, Oid};

/// OIDs asked in one GET; many agents reject large requests.
pub const MAX_OIDS_PER_REQUEST: usize = 16;

/// A poller for one SNMP device.
pub struct SnmpPoller {
    address: String,
    community: Vec<u8>,
    /// The OID of each sensor, in the device's sensor order.
    oids: Vec<Oid<'static>>,
    session: Option<AsyncSession>,
    next_request_id: i32,
}

impl std::fmt::Debug for SnmpPoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnmpPoller")
            .field("address", &self.address)
            .field("oids", &self.oids.len())
            .finish()
    }
}

impl SnmpPoller {
    /// A poller for `device`; fails if an OID cannot be encoded.
    pub fn new(device: &Device) -> Result<SnmpPoller, PollError> {
        let mut oids = Vec::new();
        for sensor in &device.sensors {
            let SensorSource::Snmp { oid } = &sensor.source else {
                return Err(PollError::Config(format!(
                    "sensor {} of SNMP device {} has no OID",
                    sensor.id, device.id
                )));
            };
            let oid = Oid::from(oid).map_err(|e| {
                PollError::Config(format!(
                    "sensor {}: OID cannot be encoded: {e:?}",
                    sensor.id
                ))
            })?;
            oids.push(oid);
        }
        Ok(SnmpPoller {
            address: device.address.clone(),
            community: device.community.as_bytes().to_vec(),
            oids,
            session: None,
            next_request_id: 1,
        })
    }

    /// Forgets the session (after a timeout or error).
    pub fn reset(&mut self) {
        self.session = None;
    }

    /// Reads every point. A device-level failure (no answer, socket error) is an `Err`; a
    /// point the device lacks is an `Err` inside that point's reading only.
    pub async fn poll(&mut self) -> Result<Vec<PointReading>, PollError> {
        let result = self.poll_inner().await;
        if result.is_err() {
            self.session = None;
        }
        result
    }

    async fn poll_inner(&mut self) -> Result<Vec<PointReading>, PollError> {
        if self.session.is_none() {
            let session =
                AsyncSession::new_v2c(self.address.as_str(), &self.community, self.next_request_id)
                    .await
                    .map_err(|e| {
                        PollError::Io(format!("open UDP session to {}: {e}", self.address))
                    })?;
            self.session = Some(session);
        }
        let Some(session) = self.session.as_mut() else {
            return Err(PollError::Io("no session".into()));
        };
        let mut readings = Vec::with_capacity(self.oids.len());
        for chunk in self.oids.chunks(MAX_OIDS_PER_REQUEST) {
            let refs: Vec<&Oid<'_>> = chunk.iter().collect();
            self.next_request_id = self.next_request_id.wrapping_add(1);
            let pdu = session
                .get_many(&refs)
                .await
                .map_err(|e| PollError::Protocol(format!("GET from {}: {e:?}", self.address)))?;
            if pdu.error_status != 0 {
                let detail = format!(
                    "device answered error-status {} at index {}",
                    pdu.error_status, pdu.error_index
                );
                readings.extend(chunk.iter().map(|_| Err(detail.clone())));
                continue;
            }
            let mut varbinds = pdu.varbinds;
            for requested in chunk {
                let reading = match varbinds.next() {
                    Some((oid, value)) if oid == *requested => {
                        numeric(&value).map_err(|e| e.to_string())
                    }
                    Some((oid, _)) => Err(format!("answer names {oid} instead of {requested}")),
                    None => Err("answer has fewer varbinds than asked".to_string()),
                };
                readings.push(reading);
            }
        }
        Ok(readings)
    }
}
