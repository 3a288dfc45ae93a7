//! Polling one SNMP device (v1, v2c or v3): GET of every configured OID, in requests of at
//! most the device's `max_oids_per_request` OIDs, through one [`SnmpClient`] that keeps the
//! session (and the SNMPv3 engine and keys) from poll to poll. A point the device lacks
//! (noSuchObject, noSuchInstance, endOfMibView, v1 noSuchName) fails only that point.
//! A device whose answers must be smaller (tooBig, or silence to a large GET while one OID is
//! answered) gets smaller GETs from then on ([`GetSize`]; one warning per change, with the
//! device id); after a tooBig the same OIDs are asked again in halves, so no point is lost.
//! With `max_concurrent_requests` = N > 1 the GETs of a poll run at once over N clients (the
//! first one plus N-1 more, each its own session and socket): each client takes the next GET
//! not yet asked as soon as its previous one is answered, so a slow answer holds back no GET
//! planned behind it; the readings keep the sensor order either way. A GET that fails (no
//! answer after its retries) fails the poll, and the other sessions then ask nothing more.
//!
//! The GETs (OIDs as arcs and encoded for snmp2, split by `max_oids_per_request`) are built
//! once and reused from poll to poll; they are rebuilt only when a row index changes (a named
//! row found or vanished). A poll therefore sends its first request without per-OID work.
//!
//! Table points: a point whose row is chosen by name walks the naming column once (GETBULK),
//! keeps the index it found and walks again only when the row disappears (noSuchInstance),
//! e.g. after a sensor was re-plugged. A name not found fails only its point and is looked
//! for again (one walk) at the next poll. Further columns of the row a decode needs
//! (ENTITY-SENSOR-MIB scale/precision/status, decimal digits, units) ride in the same GETs.

use super::get_size::GetSize;
use super::row::{decode, find_row};
use super::session::{error_status_name, Response, SnmpClient, SnmpError, Target};
use super::value::{format_oid, VarValue};
use super::walk::walk;
use crate::poller::{PointReading, PollError};
use coldaisle_config::snmp::{Decode, RowSelector, SnmpPoint};
use coldaisle_config::{Device, SensorSource};
use snmp2::Oid;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// error-status noSuchName (SNMPv1's answer for a missing object).
const NO_SUCH_NAME: u32 = 2;
/// error-status tooBig (the answer would exceed the device's message size).
const TOO_BIG: u32 = 1;

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

/// One GET of a poll, built once and reused while no row index changes.
#[derive(Debug)]
struct Batch {
    /// The OIDs asked, as arcs (to check the answer's varbinds against).
    arcs: Vec<Vec<u64>>,
    /// The same OIDs encoded for snmp2.
    oids: Vec<Oid<'static>>,
}

impl Batch {
    /// The first and second half of the batch (for a device that answered tooBig).
    fn halves(&self) -> (Batch, Batch) {
        let at = self.arcs.len() / 2;
        let part = |range: std::ops::Range<usize>| Batch {
            arcs: self.arcs[range.clone()].to_vec(),
            oids: self.oids[range].to_vec(),
        };
        (part(0..at), part(at..self.arcs.len()))
    }
}

/// A poller for one SNMP device.
pub struct SnmpPoller {
    /// Device id, for errors.
    device: String,
    /// One plan per sensor, in the device's sensor order.
    plans: Vec<Plan>,
    /// Most OIDs per GET: `max_oids_per_request`, lowered when the device shows it must be.
    /// A mutex only so that the concurrent GETs of one poll (futures on one task, never
    /// holding it across an await) can all record what they saw.
    size: Mutex<GetSize>,
    /// The GET size the current `batches` were split by.
    batch_size: usize,
    /// The device conversation.
    client: SnmpClient,
    /// Further conversations for concurrent GETs (`max_concurrent_requests` - 1).
    extra: Vec<SnmpClient>,
    /// The GETs of a poll in sensor order; `None` after a row index changed (rebuilt at the
    /// next poll).
    batches: Option<Vec<Batch>>,
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
            size: Mutex::new(GetSize::new(device.snmp.max_oids_per_request)),
            batch_size: 0,
            client: SnmpClient::new(target),
            extra,
            batches: None,
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

    /// Most OIDs per GET now (`max_oids_per_request`, or less once the device showed it must).
    #[must_use]
    pub fn get_size(&self) -> usize {
        lock(&self.size).current()
    }

    /// Reads every point. A device-level failure (no answer, rejected credentials) is an
    /// `Err`; a point the device lacks is an `Err` inside that point's reading only.
    pub async fn poll(&mut self) -> Result<Vec<PointReading>, PollError> {
        // Also here: a poll cut short by the deadline could not report its own lowering.
        self.report_lowered();
        let result = self.poll_points().await;
        self.report_lowered();
        result
    }

    /// One warning per change of the GET size, with the device id.
    fn report_lowered(&mut self) {
        let size = self.size.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(lowered) = size.take_lowered() {
            tracing::warn!(
                device = %self.device,
                from = lowered.from,
                to = lowered.to,
                configured = size.configured(),
                cause = lowered.cause.as_str(),
                "SNMP device needs smaller GETs: asking at most {} OIDs per GET from now on \
                 (until a restart or reload); set max_oids_per_request = {} for it to skip this",
                lowered.to,
                lowered.to
            );
        }
    }

    /// [`SnmpPoller::poll`] without the report.
    async fn poll_points(&mut self) -> Result<Vec<PointReading>, PollError> {
        let mut failed: HashMap<usize, String> = HashMap::new();
        self.resolve_rows(&mut failed).await?;
        if self.batches.is_none() {
            self.batches = Some(self.build_batches()?);
        }
        self.probe_if_marked().await?;
        if self.batch_size != self.get_size() {
            self.batches = Some(self.build_batches()?);
        }
        let SnmpPoller {
            client,
            extra,
            batches,
            size,
            ..
        } = self;
        let size = &*size;
        let batches = batches.as_deref().unwrap_or_default();
        let mut values: Vec<Result<VarValue, String>> =
            Vec::with_capacity(batches.iter().map(|b| b.arcs.len()).sum());
        if extra.is_empty() || batches.len() < 2 {
            for batch in batches {
                values.extend(get_chunk(client, batch, size).await?);
            }
        } else {
            // Every client takes the next GET not yet asked until none is left.
            let next = AtomicUsize::new(0);
            let streams = std::iter::once(client)
                .chain(extra.iter_mut())
                .take(batches.len())
                .map(|client| {
                    let next = &next;
                    async move {
                        let mut got = Vec::new();
                        loop {
                            let k = next.fetch_add(1, Ordering::Relaxed);
                            let Some(batch) = batches.get(k) else { break };
                            match get_chunk(client, batch, size).await {
                                Ok(values) => got.push((k, values)),
                                Err(e) => {
                                    // The poll fails: the other sessions ask nothing more.
                                    next.store(batches.len(), Ordering::Relaxed);
                                    return Err(e);
                                }
                            }
                        }
                        Ok::<_, PollError>(got)
                    }
                });
            let mut answered: Vec<(usize, Vec<Result<VarValue, String>>)> =
                Vec::with_capacity(batches.len());
            for stream in join_all(streams.collect()).await {
                answered.extend(stream?);
            }
            answered.sort_unstable_by_key(|(k, _)| *k);
            values.extend(answered.into_iter().flat_map(|(_, v)| v));
        }
        let mut readings = Vec::with_capacity(self.plans.len());
        let mut values = values.into_iter();
        let mut stale = false;
        for (i, plan) in self.plans.iter_mut().enumerate() {
            // (No hashing per point in the usual poll where nothing failed.)
            let failure = if failed.is_empty() {
                None
            } else {
                failed.remove(&i)
            };
            if let Some(reason) = failure {
                readings.push(Err(reason));
                continue;
            }
            let value = values
                .next()
                .unwrap_or_else(|| Err("no value fetched".into()));
            // No allocation for a point without extra columns.
            let extras = values
                .by_ref()
                .take(plan.point.extra_columns.len())
                .collect();
            readings.push(combine(plan, value, extras));
            stale |= plan.index.is_none();
        }
        if stale {
            // A named row vanished: the next poll looks for it and asks other OIDs.
            self.batches = None;
        }
        Ok(readings)
    }

    /// After a GET larger than any answered went unanswered ([`GetSize::probe_first`]): one
    /// GET of the first OID. Answered, the size is halved; unanswered, the poll fails as any
    /// poll of a silent device does.
    async fn probe_if_marked(&mut self) -> Result<(), PollError> {
        if !lock(&self.size).probe_first() {
            return Ok(());
        }
        let first = self
            .batches
            .as_deref()
            .and_then(|b| b.first())
            .and_then(|b| b.oids.first())
            .cloned();
        if let Some(oid) = first {
            self.client.get(std::slice::from_ref(&oid)).await?;
            lock(&self.size).probe_answered();
        }
        Ok(())
    }

    /// The GETs of every point whose row index is known, in sensor order (the value column,
    /// then the extra columns of each point), split by the current GET size.
    fn build_batches(&mut self) -> Result<Vec<Batch>, PollError> {
        self.batch_size = self.get_size();
        let mut arcs: Vec<Vec<u64>> = Vec::new();
        for plan in &self.plans {
            let Some(index) = &plan.index else { continue };
            for column in std::iter::once(&plan.column).chain(&plan.point.extra_columns) {
                let mut oid = Vec::with_capacity(column.len() + index.len());
                oid.extend_from_slice(column);
                oid.extend_from_slice(index);
                arcs.push(oid);
            }
        }
        arcs.chunks(self.batch_size)
            .map(|chunk| {
                let oids = chunk
                    .iter()
                    .map(|a| {
                        Oid::from(a).map_err(|e| {
                            PollError::Config(format!(
                                "device {}: OID {} cannot be encoded: {e:?}",
                                self.device,
                                format_oid(a)
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Batch {
                    arcs: chunk.to_vec(),
                    oids,
                })
            })
            .collect()
    }

    /// Finds the index of every point chosen by row name that has none yet (one walk per
    /// naming column); a name not found fails that point only.
    async fn resolve_rows(&mut self, failed: &mut HashMap<usize, String>) -> Result<(), PollError> {
        let mut walked: HashMap<Vec<u64>, Vec<(Vec<u64>, VarValue)>> = HashMap::new();
        for i in 0..self.plans.len() {
            if self.plans[i].index.is_some() {
                continue;
            }
            let RowSelector::Name { column, name } = self.plans[i].point.row.clone() else {
                continue;
            };
            if !walked.contains_key(&column) {
                let rows = walk(&mut self.client, &column).await?;
                walked.insert(column.clone(), rows);
            }
            let rows = walked.get(&column).map(Vec::as_slice).unwrap_or_default();
            match find_row(rows, &column, &name) {
                Ok(index) => {
                    tracing::debug!(device = %self.device, row = %name, index = %format_oid(&index), "SNMP row found");
                    self.plans[i].index = Some(index);
                    self.batches = None;
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
fn combine(
    plan: &mut Plan,
    value: Result<VarValue, String>,
    extras: Result<Vec<VarValue>, String>,
) -> PointReading {
    let (value, extras) = (value?, extras?);
    let result = match plan.point.decode {
        Decode::Plain => value.numeric().map_err(|e| e.to_string()),
        kind => decode(kind, &value, &extras),
    };
    let result = result.map_err(|e| {
        let mut oid = plan.column.clone();
        oid.extend_from_slice(plan.index.as_deref().unwrap_or_default());
        format!("{}: {e}", format_oid(&oid))
    });
    if matches!(plan.point.row, RowSelector::Name { .. })
        && matches!(value, VarValue::NoSuchInstance | VarValue::NoSuchObject)
    {
        plan.index = None;
    }
    result
}

/// The 0-based position of the OID a v1 agent named in a noSuchName answer to a GET of
/// `asked` OIDs, if it names one of them (pure).
fn no_such_name(response: &Response, asked: usize) -> Option<usize> {
    let failed = usize::try_from(response.error_index).ok()?;
    (response.error_status == NO_SUCH_NAME && (1..=asked).contains(&failed)).then(|| failed - 1)
}

/// The GET size, also after a panic elsewhere (it holds plain numbers, always consistent).
fn lock(size: &Mutex<GetSize>) -> MutexGuard<'_, GetSize> {
    size.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One GET of `batch`, each answered value or why not. When a v1 agent names a missing OID
/// (noSuchName), that OID fails and the others are asked again without it, as net-snmp's
/// tools do. When the answer would not fit the device's message size (tooBig), the batch is
/// asked in halves (down to single OIDs) and `size` remembers it; a batch larger than `size`
/// allows is split before it is sent.
async fn get_chunk(
    client: &mut SnmpClient,
    batch: &Batch,
    size: &Mutex<GetSize>,
) -> Result<Vec<Result<VarValue, String>>, PollError> {
    let n = batch.arcs.len();
    if n > 1 && n > lock(size).current() {
        return get_halves(client, batch, size).await;
    }
    lock(size).sending(n);
    let response = client.get(&batch.oids).await?;
    if response.error_status == TOO_BIG && n > 1 {
        lock(size).too_big(n);
        return get_halves(client, batch, size).await;
    }
    lock(size).answered(n);
    let Some(mut missing) = no_such_name(&response, batch.arcs.len()) else {
        return Ok(answered_values(&response, &batch.arcs));
    };
    // v1 only: drop the OID the agent named and ask again for the others.
    let mut results: Vec<Option<Result<VarValue, String>>> = vec![None; batch.arcs.len()];
    let mut pending: Vec<usize> = (0..batch.arcs.len()).collect();
    loop {
        let gone = pending.remove(missing);
        results[gone] = Some(Err(format!(
            "device answered noSuchName for {}",
            format_oid(&batch.arcs[gone])
        )));
        if pending.is_empty() {
            break;
        }
        let oids: Vec<Oid<'static>> = pending.iter().map(|&i| batch.oids[i].clone()).collect();
        let asked: Vec<Vec<u64>> = pending.iter().map(|&i| batch.arcs[i].clone()).collect();
        let response = client.get(&oids).await?;
        match no_such_name(&response, pending.len()) {
            Some(again) => missing = again,
            None => {
                for (slot, value) in pending.iter().zip(answered_values(&response, &asked)) {
                    results[*slot] = Some(value);
                }
                break;
            }
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("not asked".to_string())))
        .collect())
}

/// [`get_chunk`] of each half of `batch`, values in order.
async fn get_halves(
    client: &mut SnmpClient,
    batch: &Batch,
    size: &Mutex<GetSize>,
) -> Result<Vec<Result<VarValue, String>>, PollError> {
    let (first, second) = batch.halves();
    let mut values = Box::pin(get_chunk(client, &first, size)).await?;
    values.extend(Box::pin(get_chunk(client, &second, size)).await?);
    Ok(values)
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

    #[tokio::test]
    async fn a_silent_device_costs_one_timeout_per_session_not_per_get() {
        let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut text = format!(
            "agent_id = \"a\"\nsite = \"lab\"\nstate_dir = \"/tmp/unused\"\n[mqtt]\nhost = \"h\"\n\
             [[devices]]\nid = \"pdu\"\nprotocol = \"snmp\"\naddress = \"{}\"\nzone = \"Z1\"\n\
             poll_interval = \"5s\"\ntimeout = \"1s\"\n[devices.snmp]\nrequest_timeout = \"50ms\"\n\
             retries = 0\nmax_oids_per_request = 2\nmax_concurrent_requests = 3\n",
            silent.local_addr().unwrap()
        );
        for i in 1..=16 {
            text.push_str(&format!(
                "[[devices.points]]\nsensor = \"s{i}\"\nkind = \"temperature\"\noid = \"1.3.6.1.4.1.99999.{i}\"\n"
            ));
        }
        let config =
            coldaisle_config::AgentConfig::from_str(&text, std::path::Path::new("a.toml")).unwrap();
        let mut poller = SnmpPoller::new(&config.devices[0]).unwrap();
        // 8 GETs over 3 sessions: each session's first GET times out and the poll stops.
        let err = poller.poll().await.unwrap_err();
        assert!(format!("{err:?}").contains("no answer"), "{err:?}");
        assert_eq!(poller.requests_sent(), 3);
    }

    #[test]
    fn no_such_name_names_only_an_asked_position() {
        let answer = |error_status, error_index| Response {
            error_status,
            error_index,
            varbinds: vec![],
        };
        assert_eq!(no_such_name(&answer(2, 1), 3), Some(0));
        assert_eq!(no_such_name(&answer(2, 3), 3), Some(2));
        // Out of range, index 0 or another error: not a point to drop.
        assert_eq!(no_such_name(&answer(2, 4), 3), None);
        assert_eq!(no_such_name(&answer(2, 0), 3), None);
        assert_eq!(no_such_name(&answer(5, 1), 3), None);
        assert_eq!(no_such_name(&answer(0, 0), 3), None);
    }
}
