//! Detector state across restarts: the pipeline's [`PipelineState`] (learned bands, open
//! raises, flap gates, the zone correlator) in the tree `detector_state` of the agent's store
//! (the outbox owns the tree `outbox` of the same store).
//!
//! Layout (issue 18, part 5): one JSON record per sensor under `sensor/<sensor id>` (its
//! detectors' states by name), `devices` (reachability by device id) and `correlator`. Before
//! it, the whole state was one record, `pipeline`, a `PipelineState` of every sensor: at 500
//! devices a 6 MiB buffer built on every save, whose memory glibc kept. The loader reads both
//! (the old record first, the per-sensor records over it); a save writes the new layout and
//! then removes the old record and the records of sensors the pipeline no longer has (a
//! removed device's). A save is written in batches of [`SENSORS_PER_BATCH`] sensors, so a
//! crash mid-save leaves some sensors at the previous save's state: each record is whole, and
//! the detectors of a sensor only depend on their own record. (The code before this layout
//! reads no `pipeline` record after a save by this one: its detectors would start fresh.)
//!
//! The daemon saves it periodically and on shutdown and restores it at start. A state that
//! does not decode is reported and ignored: the detectors then start fresh, which costs
//! re-learning, never correctness of the outbox.

use crate::pipeline::{PipelineState, StatePart};
use coldaisle_store::{KvStore, StoreError, WriteBatch};
use std::collections::HashSet;
use std::ops::ControlFlow;

const TREE: &str = "detector_state";
/// The single record of the layout before part 5 (read, removed on the next save).
const OLD_KEY: &[u8] = b"pipeline";
/// Prefix of the per-sensor records; the sensor id follows.
const SENSOR_PREFIX: &[u8] = b"sensor/";
/// The record of device reachability.
const DEVICES_KEY: &[u8] = b"devices";
/// The record of the zone correlator.
const CORRELATOR_KEY: &[u8] = b"correlator";

/// Sensor records per batch applied to the store: bounds the save's transient to this many
/// records (≈ 3 KB each for an inlet sensor with a full forecast window).
pub const SENSORS_PER_BATCH: usize = 64;

/// Failures loading or storing the state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored record does not decode.
    #[error("stored detector state (tree `{TREE}`) does not decode: {0}")]
    Corrupt(String),
    /// A detector state does not serialise (nothing more was stored).
    #[error("detector state does not encode: {0}")]
    Encode(String),
}

impl From<serde_json::Error> for StateError {
    fn from(e: serde_json::Error) -> Self {
        StateError::Encode(e.to_string())
    }
}

fn corrupt(key: &[u8], e: &serde_json::Error) -> StateError {
    StateError::Corrupt(format!("record `{}`: {e}", String::from_utf8_lossy(key)))
}

/// Loads the stored state, if any: the old single record, then the per-sensor records (and
/// `devices`, `correlator`) over it.
pub fn load(store: &dyn KvStore) -> Result<Option<PipelineState>, StateError> {
    let mut state = match store.get(TREE, OLD_KEY)? {
        Some(bytes) => Some(
            serde_json::from_slice::<PipelineState>(&bytes).map_err(|e| corrupt(OLD_KEY, &e))?,
        ),
        None => None,
    };
    let mut failed = None;
    visit_sensor_records(store, |key, value| {
        let id = key.strip_prefix(SENSOR_PREFIX).unwrap_or(key);
        match serde_json::from_slice(value) {
            Ok(detectors) => {
                let id = String::from_utf8_lossy(id).into_owned();
                state
                    .get_or_insert_with(PipelineState::default)
                    .sensors
                    .insert(id, detectors);
                ControlFlow::Continue(())
            }
            Err(e) => {
                failed = Some(corrupt(key, &e));
                ControlFlow::Break(())
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    if let Some(bytes) = store.get(TREE, DEVICES_KEY)? {
        state.get_or_insert_with(PipelineState::default).devices =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(DEVICES_KEY, &e))?;
    }
    if let Some(bytes) = store.get(TREE, CORRELATOR_KEY)? {
        state.get_or_insert_with(PipelineState::default).correlator =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(CORRELATOR_KEY, &e))?;
    }
    Ok(state)
}

/// Stores `state` in the layout before part 5 (one record, `pipeline`) and flushes. Returns
/// the bytes written. Only for tests of the loader's compatibility.
#[cfg(test)]
pub(crate) fn save_single_record(
    store: &dyn KvStore,
    state: &PipelineState,
) -> Result<usize, StateError> {
    let bytes = serde_json::to_vec(state)?;
    let len = bytes.len();
    let mut batch = WriteBatch::default();
    batch.insert(OLD_KEY, bytes);
    store.apply(TREE, batch)?;
    store.flush()?;
    Ok(len)
}

/// Visits the per-sensor records in key order, [`SENSORS_PER_BATCH`] read at a time (not
/// `coldaisle_store::visit_from`'s 4,096: that would hold most of the state at once), until
/// `visit` breaks or the records end.
fn visit_sensor_records(
    store: &dyn KvStore,
    mut visit: impl FnMut(&[u8], &[u8]) -> ControlFlow<()>,
) -> Result<(), StoreError> {
    let mut from = SENSOR_PREFIX.to_vec();
    loop {
        let chunk = store.scan(TREE, &from, SENSORS_PER_BATCH)?;
        for (key, value) in &chunk {
            if !key.starts_with(SENSOR_PREFIX) || visit(key, value).is_break() {
                return Ok(());
            }
        }
        let Some((last, _)) = chunk.last() else {
            return Ok(());
        };
        // The smallest key after `last`.
        from.clone_from(last);
        from.push(0);
    }
}

/// The key of a sensor's record.
fn sensor_key(id: &str) -> Vec<u8> {
    [SENSOR_PREFIX, id.as_bytes()].concat()
}

/// Stores `pipeline`'s state, one record per sensor ([`crate::pipeline::Pipeline::write_state_parts`],
/// each encoded into one reused buffer), applied in batches of [`SENSORS_PER_BATCH`]; then
/// removes the old single record and the records of sensors the pipeline no longer has, and
/// flushes. Returns the bytes of the records written. Reads back with [`load`].
pub fn save_pipeline(
    store: &dyn KvStore,
    pipeline: &crate::pipeline::Pipeline,
) -> Result<usize, StateError> {
    let mut buf = Vec::new();
    let mut batch = WriteBatch::default();
    let mut kept: HashSet<Vec<u8>> = HashSet::new();
    let mut written = 0;
    pipeline.write_state_parts(&mut buf, |part, bytes| {
        let key = match part {
            StatePart::Sensor(id) => {
                let key = sensor_key(id);
                kept.insert(key.clone());
                key
            }
            StatePart::Devices => DEVICES_KEY.to_vec(),
            StatePart::Correlator => CORRELATOR_KEY.to_vec(),
        };
        written += bytes.len();
        batch.insert(key, bytes);
        if batch.ops.len() >= SENSORS_PER_BATCH {
            store.apply(TREE, std::mem::take(&mut batch))?;
        }
        Ok::<_, StateError>(())
    })?;
    batch.remove(OLD_KEY);
    visit_sensor_records(store, |key, _| {
        if !kept.contains(key) {
            batch.remove(key);
        }
        ControlFlow::Continue(())
    })?;
    store.apply(TREE, batch)?;
    store.flush()?;
    Ok(written)
}

/// How often the daemon stores the detector state while running.
pub const SAVE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Restores the stored state into `pipeline`, logging what happened (never fails the start).
pub fn restore_into(pipeline: &mut crate::pipeline::Pipeline, store: &dyn KvStore) {
    match load(store) {
        Ok(Some(state)) => {
            let restored = pipeline.restore_state(&state);
            tracing::info!(
                restored,
                sensors = state.sensors.len(),
                "detector state restored"
            );
        }
        Ok(None) => tracing::info!("no stored detector state: detectors start fresh"),
        Err(e) => tracing::warn!(error = %e, "detector state ignored: detectors start fresh"),
    }
}

/// Stores the pipeline's state, logging a failure (the next save retries).
pub fn save_logged(pipeline: &crate::pipeline::Pipeline, store: &dyn KvStore) {
    match save_pipeline(store, pipeline) {
        Ok(bytes) => tracing::debug!(bytes, flaps = pipeline.flaps(), "detector state saved"),
        Err(e) => tracing::warn!(error = %e, "saving the detector state failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldaisle_store::MemoryStore;

    #[test]
    fn an_open_raise_survives_reopening_the_sled_store() {
        use crate::pipeline::Pipeline;
        use crate::poller::PollOutcome;
        use coldaisle_config::AgentConfig;
        use coldaisle_core::wire::Payload;
        use coldaisle_core::{EventState, Timestamp};
        let config = AgentConfig::from_str(
            r#"
agent_id = "a1"
site = "s1"
state_dir = "/tmp/unused"
[mqtt]
host = "127.0.0.1"
[[devices]]
id = "pdu"
protocol = "snmp"
address = "127.0.0.1"
zone = "Z1"
[[devices.points]]
sensor = "r1"
kind = "inlet_temp"
oid = "1.3.6.1.4.1.1.1"
[devices.points.threshold]
high = 27.0
"#,
            std::path::Path::new("t.toml"),
        )
        .expect("config");
        let poll = |s: i64, v: f64| PollOutcome {
            device: 0,
            ts: Timestamp(s * 1000),
            result: Ok(vec![Ok(v)]),
        };
        let states = |payloads: Vec<Payload>| -> Vec<EventState> {
            payloads
                .into_iter()
                .filter_map(|p| match p {
                    Payload::SensorEvent(e) => Some(e.state),
                    _ => None,
                })
                .collect()
        };
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = coldaisle_store::SledStore::open(dir.path()).expect("open");
            let mut p = Pipeline::new(&config);
            assert_eq!(states(p.observe(&poll(0, 30.0))), vec![EventState::Raised]);
            save_logged(&p, &store);
        }
        let store = coldaisle_store::SledStore::open(dir.path()).expect("reopen");
        let mut p = Pipeline::new(&config);
        restore_into(&mut p, &store);
        assert!(
            states(p.observe(&poll(10, 30.0))).is_empty(),
            "no second raise"
        );
        assert_eq!(
            states(p.observe(&poll(20, 20.0))),
            vec![EventState::Cleared]
        );
    }

    /// A config of `devices` SNMP devices with 4 inlet sensors each (`d{i}.r{j}`).
    fn config(devices: usize) -> coldaisle_config::AgentConfig {
        let mut toml = String::from(
            "agent_id = \"a1\"\nsite = \"s1\"\nstate_dir = \"/tmp/unused\"\n[mqtt]\nhost = \"127.0.0.1\"\n",
        );
        for i in 0..devices {
            toml.push_str(&format!(
                "[[devices]]\nid = \"d{i}\"\nprotocol = \"snmp\"\naddress = \"127.0.0.1\"\nzone = \"Z1\"\n"
            ));
            for j in 0..4 {
                toml.push_str(&format!(
                    "[[devices.points]]\nsensor = \"d{i}.r{j}\"\nkind = \"inlet_temp\"\noid = \"1.3.6.1.4.1.1.{j}\"\n"
                ));
            }
        }
        coldaisle_config::AgentConfig::from_str(&toml, std::path::Path::new("t.toml"))
            .expect("config")
    }

    /// The pipeline of `config` after a few polls of every device (values rising, so the
    /// detectors hold state).
    fn polled(config: &coldaisle_config::AgentConfig) -> crate::pipeline::Pipeline {
        let mut p = crate::pipeline::Pipeline::new(config);
        for t in 0..8_i64 {
            for device in 0..config.devices.len() {
                p.observe(&crate::poller::PollOutcome {
                    device,
                    ts: coldaisle_core::Timestamp(t * 30_000),
                    result: Ok(vec![Ok(20.0 + t as f64 * 0.5); 4]),
                });
            }
        }
        p
    }

    fn sensor_records(store: &dyn KvStore) -> Vec<String> {
        let mut ids = Vec::new();
        visit_sensor_records(store, |key, _| {
            ids.push(String::from_utf8_lossy(key).into_owned());
            ControlFlow::Continue(())
        })
        .expect("scan");
        ids
    }

    #[test]
    fn one_record_per_sensor_in_batches_reads_back_as_the_exported_state() {
        // 25 devices: 100 sensor records, more than one batch and one scan chunk.
        let p = polled(&config(25));
        let store = MemoryStore::default();
        let written = save_pipeline(&store, &p).expect("saved");
        assert!(written > 100 * 100, "{written}");
        assert_eq!(sensor_records(&store).len(), 100);
        assert_eq!(store.get(TREE, OLD_KEY).expect("get"), None);
        assert_eq!(load(&store).expect("loads"), Some(p.export_state()));
    }

    #[test]
    fn an_old_single_record_loads_and_the_next_save_replaces_it() {
        let p = polled(&config(3));
        let store = MemoryStore::default();
        save_single_record(&store, &p.export_state()).expect("old save");
        assert!(sensor_records(&store).is_empty());
        assert_eq!(load(&store).expect("loads"), Some(p.export_state()));
        // The new layout over it: the old record is removed, the state reads the same.
        save_pipeline(&store, &p).expect("new save");
        assert_eq!(store.get(TREE, OLD_KEY).expect("get"), None);
        assert_eq!(sensor_records(&store).len(), 12);
        assert_eq!(load(&store).expect("loads"), Some(p.export_state()));
    }

    #[test]
    fn per_sensor_records_override_an_old_record_left_by_an_interrupted_save() {
        let store = MemoryStore::default();
        let older = polled(&config(2));
        save_single_record(&store, &older.export_state()).expect("old save");
        // A save that stopped after its first batch: one sensor newer, the old record kept.
        let mut newer = polled(&config(2));
        newer.observe(&crate::poller::PollOutcome {
            device: 0,
            ts: coldaisle_core::Timestamp(300_000),
            result: Ok(vec![Ok(26.0); 4]),
        });
        let fresh = newer.export_state();
        let mut batch = WriteBatch::default();
        let one = serde_json::to_vec(&fresh.sensors["d0.r0"]).expect("encode");
        batch.insert(sensor_key("d0.r0"), one);
        store.apply(TREE, batch).expect("apply");
        let loaded = load(&store).expect("loads").expect("stored");
        assert_eq!(loaded.sensors["d0.r0"], fresh.sensors["d0.r0"]);
        assert_ne!(
            loaded.sensors["d0.r0"],
            older.export_state().sensors["d0.r0"]
        );
        assert_eq!(
            loaded.sensors["d1.r0"],
            older.export_state().sensors["d1.r0"]
        );
        assert_eq!(loaded.sensors.len(), 8);
    }

    #[test]
    fn a_removed_devices_records_are_deleted_on_the_next_save() {
        let store = MemoryStore::default();
        save_pipeline(&store, &polled(&config(3))).expect("three devices");
        assert_eq!(sensor_records(&store).len(), 12);
        let two = polled(&config(2));
        save_pipeline(&store, &two).expect("two devices");
        let records = sensor_records(&store);
        assert_eq!(records.len(), 8, "{records:?}");
        assert!(
            !records.iter().any(|k| k.starts_with("sensor/d2.")),
            "{records:?}"
        );
        let loaded = load(&store).expect("loads").expect("stored");
        assert_eq!(loaded, two.export_state());
        assert!(!loaded.devices.contains_key("d2"));
    }

    #[test]
    fn a_corrupt_sensor_record_is_reported_with_its_key() {
        let store = MemoryStore::default();
        save_pipeline(&store, &polled(&config(1))).expect("saved");
        let mut batch = WriteBatch::default();
        batch.insert(sensor_key("d0.r1"), b"{not json".to_vec());
        store.apply(TREE, batch).expect("apply");
        match load(&store) {
            Err(StateError::Corrupt(message)) => {
                assert!(message.contains("sensor/d0.r1"), "{message}");
            }
            other => panic!("expected a corrupt record: {other:?}"),
        }
    }

    #[test]
    fn round_trip_and_corruption_is_reported() {
        let store = MemoryStore::default();
        assert!(load(&store).expect("empty").is_none());
        let mut state = PipelineState::default();
        state.sensors.entry("r1".into()).or_default().insert(
            "threshold".into(),
            serde_json::json!({"Raised": {"since": 5, "side": "High"}}),
        );
        assert!(save_single_record(&store, &state).expect("saved") > 10);
        assert_eq!(load(&store).expect("loads"), Some(state));
        let mut batch = WriteBatch::default();
        batch.insert(OLD_KEY, b"{not json".to_vec());
        store.apply(TREE, batch).expect("apply");
        assert!(matches!(load(&store), Err(StateError::Corrupt(_))));
    }
}
