//! Detector state across restarts: the pipeline's [`PipelineState`] (learned bands, open
//! raises, flap gates, the zone correlator) as one JSON value in the tree `detector_state` of
//! the agent's store (the outbox owns the tree `outbox` of the same store).
//!
//! The daemon saves it periodically and on shutdown and restores it at start. A state that
//! does not decode is reported and ignored: the detectors then start fresh, which costs
//! re-learning, never correctness of the outbox.

use crate::pipeline::PipelineState;
use coldaisle_store::{KvStore, StoreError, WriteBatch};

const TREE: &str = "detector_state";
const KEY: &[u8] = b"pipeline";

/// Failures loading or storing the state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored JSON does not decode.
    #[error("stored detector state (tree `{TREE}`) does not decode: {0}")]
    Corrupt(String),
    /// A detector state does not serialise (nothing was stored).
    #[error("detector state does not encode: {0}")]
    Encode(String),
}

/// Loads the stored state, if any.
pub fn load(store: &dyn KvStore) -> Result<Option<PipelineState>, StateError> {
    let Some(bytes) = store.get(TREE, KEY)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StateError::Corrupt(e.to_string()))
}

/// Stores `state` and flushes. Returns the bytes written.
pub fn save(store: &dyn KvStore, state: &PipelineState) -> Result<usize, StateError> {
    let bytes = serde_json::to_vec(state).map_err(|e| StateError::Encode(e.to_string()))?;
    put(store, bytes)
}

/// Stores `pipeline`'s state, serialised straight from the pipeline
/// ([`crate::pipeline::Pipeline::write_state`]: no `serde_json::Value` tree of every sensor),
/// and flushes. Returns the bytes written. Reads back with [`load`] like [`save`]'s record.
pub fn save_pipeline(
    store: &dyn KvStore,
    pipeline: &crate::pipeline::Pipeline,
) -> Result<usize, StateError> {
    let mut bytes = Vec::new();
    pipeline
        .write_state(&mut bytes)
        .map_err(|e| StateError::Encode(e.to_string()))?;
    put(store, bytes)
}

/// Writes the encoded state as the one record of the tree and flushes.
fn put(store: &dyn KvStore, bytes: Vec<u8>) -> Result<usize, StateError> {
    let len = bytes.len();
    let mut batch = WriteBatch::default();
    batch.insert(KEY, bytes);
    store.apply(TREE, batch)?;
    store.flush()?;
    Ok(len)
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

    #[test]
    fn round_trip_and_corruption_is_reported() {
        let store = MemoryStore::default();
        assert!(load(&store).expect("empty").is_none());
        let mut state = PipelineState::default();
        state.sensors.entry("r1".into()).or_default().insert(
            "threshold".into(),
            serde_json::json!({"Raised": {"since": 5, "side": "High"}}),
        );
        assert!(save(&store, &state).expect("saved") > 10);
        assert_eq!(load(&store).expect("loads"), Some(state));
        let mut batch = WriteBatch::default();
        batch.insert(KEY, b"{not json".to_vec());
        store.apply(TREE, batch).expect("apply");
        assert!(matches!(load(&store), Err(StateError::Corrupt(_))));
    }
}
