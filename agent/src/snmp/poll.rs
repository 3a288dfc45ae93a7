//! Polling one SNMP device (v1, v2c or v3): GET of every configured OID, in requests of at
//! most the device's `max_oids_per_request` OIDs, through one [`SnmpClient`] that keeps the
//! session (and the SNMPv3 engine and keys) from poll to poll. A point the device lacks
//! (noSuchObject, noSuchInstance, endOfMibView, v1 noSuchName) fails only that point.
//! With `max_concurrent_requests` = N > 1 the GETs of a poll are spread round-robin over N
//! clients (the first one plus N-1 more, each its own session and socket) and run at once;
//! the readings keep the sensor order either way.
//!
//! Table points: a point whose row is chosen by name walks the naming column once (GETBULK),
//! keeps the index it found and walks again only when the row disappears (noSuchInstance),
//! e.g. after a sensor was re-plugged. A name not found fails only its point and is looked
//! for again (one walk) at the next poll. Further columns of the row a decode needs
//! (ENTITY-SENSOR-MIB scale/precision/status, decimal digits, units) ride in the same GETs.

use super::row::{decode, find_row};
use super::session::{error_status_name, Response, SnmpClient, SnmpError, Target};
use super::value::{format_oid, VarValue};
use super::walk::walk;
use crate::poller::{PointReading, PollError};
use coldaisle_config::snmp::{Decode, RowSelector, SnmpPoint};
use coldaisle_config::{Device, SensorSource};
use snmp2::Oid;
use std::collections::HashMap;

/// error-status noSuchName (SNMPv1's answer for a missing object).
const NO_SUCH_NAME: u32 = 2;

/// One sensor's plan: its column, row selection, decode and the row index once known.
#[derive(Debug, Clone)]
struct Plan {
    /// The `oid` of the point (a complete instance for [`RowSelector::Instance`]).
    column: Vec<u64>,
    /// Row selection and decode.
    point: SnmpPoint,
    /// The row index, once known (always known for instance and fixed-index points).
    index: Option<Vec<u64>>,
}

/// A poller for one SNMP device.
pub struct SnmpPoller {
    /// Device id, for errors.
    device: String,
    /// One plan per sensor, in the device's sensor order.
    plans: Vec<Plan>,
    /// Most OIDs per GET.
    max_oids: usize,
    /// The device conversation.
    client: SnmpClient,
    /// Further conversations for concurrent GETs (`max_concurrent_requests` - 1).
    extra: Vec<SnmpClient>,
}

impl std::fmt::Debug for SnmpPoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnmpPoller")
            .field("device", &self.device)
            .field("client", &self.client)
            .field("points", &self.plans.len())
            .finish()
    }
}

impl From<SnmpError> for PollError {
    fn from(e: SnmpError) -> PollError {
        match e {
            SnmpError::Io { .. } => PollError::Io(e.to_string()),
            other => PollError::Protocol(other.to_string()),
        }
    }
}

impl SnmpPoller {
    /// A poller for `device`; fails if an OID cannot be encoded.
    pub fn new(device: &Device) -> Result<SnmpPoller, PollError> {
        let mut plans = Vec::new();
        for (i, sensor) in device.sensors.iter().enumerate() {
            let SensorSource::Snmp { oid } = &sensor.source else {
                return Err(PollError::Config(format!(
                    "sensor {} of SNMP device {} has no OID",
                    sensor.id, device.id
                )));
            };
            Oid::from(oid).map_err(|e| {
                PollError::Config(format!(
                    "sensor {}: OID cannot be encoded: {e:?}",
                    sensor.id
                ))
            })?;
            let point = device
                .snmp
                .points
                .get(i)
                .cloned()
                .unwrap_or_else(SnmpPoint::plain);
            let index = match &point.row {
                RowSelector::Instance => Some(Vec::new()),
                RowSelector::Index(index) => Some(index.clone()),
                RowSelector::Name { .. } => None,
            };
            plans.push(Plan {
                column: oid.clone(),
                point,
                index,
            });
        }
        let target = Target {
            address: device.address.clone(),
            community: device.community.clone(),
            settings: device.snmp.clone(),
        };
        let extra = (1..device.snmp.max_concurrent_requests)
            .map(|_| SnmpClient::new(target.clone()))
            .collect();
        Ok(SnmpPoller {
            device: device.id.clone(),
            plans,
            max_oids: device.snmp.max_oids_per_request.max(1),
            client: SnmpClient::new(target),
            extra,
        })
    }

    /// The device conversation (request and discovery counters).
    #[must_use]
    pub fn client(&self) -> &SnmpClient {
        &self.client
    }

    /// Requests sent by every conversation of this poller (the first and the concurrent ones).
    #[must_use]
    pub fn requests_sent(&self) -> u64 {
        self.client.requests_sent()
            + self
                .extra
                .iter()
                .map(SnmpClient::requests_sent)
                .sum::<u64>()
    }

    /// Called after the device's deadline cut a poll short. The session is kept: snmp2
    /// recognises a late answer by its request id and the client then opens a fresh socket,
    /// so the SNMPv3 engine and keys need not be rediscovered for every missed poll.
    pub fn reset(&mut self) {}

    /// Reads every point. A device-level failure (no answer, rejected credentials) is an
    /// `Err`; a point the device lacks is an `Err` inside that point's reading only.
    pub async fn poll(&mut self) -> Result<Vec<PointReading>, PollError> {
        let mut failed: HashMap<usize, String> = HashMap::new();
        self.resolve_rows(&mut failed).await?;
        // Every OID to GET, with the plan it belongs to.
        let mut oids: Vec<Vec<u64>> = Vec::new();
        let mut owner: Vec<usize> = Vec::new();
        for (i, plan) in self.plans.iter().enumerate() {
            let Some(index) = &plan.index else { continue };
            for column in std::iter::once(&plan.column).chain(&plan.point.extra_columns) {
                let mut oid = column.clone();
                oid.extend_from_slice(index);
                oids.push(oid);
                owner.push(i);
            }
        }
        let chunks: Vec<&[Vec<u64>]> = oids.chunks(self.max_oids).collect();
        let mut values: Vec<Result<VarValue, String>> = Vec::with_capacity(oids.len());
        if self.extra.is_empty() || chunks.len() < 2 {
            for chunk in chunks {
                values.extend(get_chunk(&mut self.client, chunk).await?);
            }
        } else {
            // Chunk k goes to client k mod N; each client asks its chunks one after the other.
            let n = 1 + self.extra.len();
            let clients = std::iter::once(&mut self.client).chain(self.extra.iter_mut());
            let streams = clients.enumerate().map(|(c, client)| {
                let mine: Vec<(usize, &[Vec<u64>])> = chunks
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| k % n == c)
                    .map(|(k, chunk)| (k, *chunk))
                    .collect();
                async move {
                    let mut got = Vec::with_capacity(mine.len());
                    for (k, chunk) in mine {
                        got.push((k, get_chunk(client, chunk).await?));
                    }
                    Ok::<_, PollError>(got)
                }
            });
            let mut answered: Vec<(usize, Vec<Result<VarValue, String>>)> = Vec::new();
            for stream in join_all(streams.collect()).await {
                answered.extend(stream?);
            }
            answered.sort_by_key(|(k, _)| *k);
            values.extend(answered.into_iter().flat_map(|(_, v)| v));
        }
        let mut readings = Vec::with_capacity(self.plans.len());
        let mut next = 0;
        for (i, plan) in self.plans.iter_mut().enumerate() {
            if let Some(reason) = failed.remove(&i) {
                readings.push(Err(reason));
                continue;
            }
            let count = 1 + plan.point.extra_columns.len();
            let mine = &values[next..next + count];
            next += count;
            debug_assert!(owner[next - 1] == i);
            readings.push(combine(plan, mine));
        }
        Ok(readings)
    }

    /// Finds the index of every point chosen by row name that has none yet (one walk per
    /// naming column); a name not found fails that point only.
    async fn resolve_rows(&mut self, failed: &mut HashMap<usize, String>) -> Result<(), PollError> {
        let mut walked: HashMap<Vec<u64>, Vec<(Vec<u64>, VarValue)>> = HashMap::new();
        for i in 0..self.plans.len() {
            let RowSelector::Name { column, name } = self.plans[i].point.row.clone() else {
                continue;
            };
            if self.plans[i].index.is_some() {
                continue;
            }
            if !walked.contains_key(&column) {
                let rows = walk(&mut self.client, &column).await?;
                walked.insert(column.clone(), rows);
            }
            let rows = walked.get(&column).map(Vec::as_slice).unwrap_or_default();
            match find_row(rows, &column, &name) {
                Ok(index) => {
                    tracing::debug!(device = %self.device, row = %name, index = %format_oid(&index), "SNMP row found");
                    self.plans[i].index = Some(index);
                }
                Err(reason) => {
                    failed.insert(i, reason);
                }
            }
        }
        Ok(())
    }
}

/// Runs every future at once on the current task and returns their outputs in order.
async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *output = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// One point's reading from its value and extra columns; a vanished named row is forgotten
/// so the next poll looks for it again.
fn combine(plan: &mut Plan, values: &[Result<VarValue, String>]) -> PointReading {
    let mut fetched = Vec::with_capacity(values.len());
    for v in values {
        match v {
            Ok(v) => fetched.push(v.clone()),
            Err(e) => return Err(e.clone()),
        }
    }
    let Some((value, extras)) = fetched.split_first() else {
        return Err("no value fetched".into());
    };
    if matches!(plan.point.row, RowSelector::Name { .. })
        && matches!(value, VarValue::NoSuchInstance | VarValue::NoSuchObject)
    {
        plan.index = None;
    }
    let oid = {
        let mut o = plan.column.clone();
        o.extend_from_slice(plan.index.as_deref().unwrap_or_default());
        o
    };
    match plan.point.decode {
        Decode::Plain => value
            .numeric()
            .map_err(|e| format!("{}: {e}", format_oid(&oid))),
        kind => decode(kind, value, extras).map_err(|e| format!("{}: {e}", format_oid(&oid))),
    }
}

/// One GET of `oids`, each answered value or why not; when a v1 agent names a missing OID
/// (noSuchName), that OID fails and the others are asked again without it, as net-snmp's
/// tools do.
async fn get_chunk(
    client: &mut SnmpClient,
    arcs: &[Vec<u64>],
) -> Result<Vec<Result<VarValue, String>>, PollError> {
    let mut results: Vec<Option<Result<VarValue, String>>> = vec![None; arcs.len()];
    let mut pending: Vec<usize> = (0..arcs.len()).collect();
    while !pending.is_empty() {
        let mut oids = Vec::with_capacity(pending.len());
        for &i in &pending {
            oids.push(Oid::from(&arcs[i]).map_err(|e| {
                PollError::Config(format!(
                    "OID {} cannot be encoded: {e:?}",
                    format_oid(&arcs[i])
                ))
            })?);
        }
        let asked: Vec<Vec<u64>> = pending.iter().map(|&i| arcs[i].clone()).collect();
        let response = client.get(&oids).await?;
        let failed = usize::try_from(response.error_index).unwrap_or(0);
        if response.error_status == NO_SUCH_NAME && (1..=pending.len()).contains(&failed) {
            let missing = pending.remove(failed - 1);
            results[missing] = Some(Err(format!(
                "device answered noSuchName for {}",
                format_oid(&arcs[missing])
            )));
            continue;
        }
        for (slot, value) in pending.iter().zip(answered_values(&response, &asked)) {
            results[*slot] = Some(value);
        }
        break;
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("not asked".to_string())))
        .collect())
}

/// The value answered for each OID `asked` in one GET response (pure); exceptions
/// (noSuchObject, ...) are values here and fail later, when a number is needed.
pub fn answered_values(response: &Response, asked: &[Vec<u64>]) -> Vec<Result<VarValue, String>> {
    if response.error_status != 0 {
        let status = error_status_name(response.error_status);
        // v1 names the one missing OID; the other points of the request are unknown.
        return asked
            .iter()
            .enumerate()
            .map(|(i, oid)| {
                if usize::try_from(response.error_index).ok() == Some(i + 1) {
                    Err(format!("device answered {status} for {}", format_oid(oid)))
                } else {
                    Err(format!(
                        "device answered {status} (index {}) to the request",
                        response.error_index
                    ))
                }
            })
            .collect();
    }
    let mut answers = response.varbinds.iter();
    asked
        .iter()
        .map(|requested| match answers.next() {
            Some((oid, value)) if oid == requested => Ok(value.clone()),
            Some((oid, _)) => Err(format!(
                "answer names {} instead of {}",
                format_oid(oid),
                format_oid(requested)
            )),
            None => Err(format!(
                "answer has fewer varbinds than asked (no {})",
                format_oid(requested)
            )),
        })
        .collect()
}

/// The readings of the points `asked` from one GET response (pure).
pub fn point_readings(response: &Response, asked: &[Vec<u64>]) -> Vec<PointReading> {
    answered_values(response, asked)
        .into_iter()
        .zip(asked)
        .map(|(value, oid)| {
            value.and_then(|v| v.numeric().map_err(|e| format!("{}: {e}", format_oid(oid))))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snmp::value::VarValue;

    #[test]
    fn exceptions_fail_only_their_point() {
        let asked = vec![vec![1, 3, 6, 1], vec![1, 3, 6, 2], vec![1, 3, 6, 3]];
        let response = Response {
            error_status: 0,
            error_index: 0,
            varbinds: vec![
                (vec![1, 3, 6, 1], VarValue::Integer(215)),
                (vec![1, 3, 6, 2], VarValue::NoSuchInstance),
                (vec![1, 3, 6, 3], VarValue::Gauge32(40)),
            ],
        };
        let r = point_readings(&response, &asked);
        assert_eq!(r[0], Ok(215.0));
        assert!(r[1]
            .as_ref()
            .is_err_and(|e| e.contains("noSuchInstance") && e.contains("1.3.6.2")));
        assert_eq!(r[2], Ok(40.0));
        let short = Response {
            varbinds: vec![(vec![1, 3, 6, 1], VarValue::Integer(1))],
            ..response.clone()
        };
        assert!(point_readings(&short, &asked)[2].is_err());
        let v1 = Response {
            error_status: 2,
            error_index: 2,
            varbinds: vec![],
        };
        let r = point_readings(&v1, &asked);
        assert!(r[1]
            .as_ref()
            .is_err_and(|e| e.contains("noSuchName for 1.3.6.2")));
        assert!(r.iter().all(Result::is_err));
    }
}
