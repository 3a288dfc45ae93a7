//! Detector state across restarts: the pipeline's [`PipelineState`] (learned bands, open
//! raises, flap gates, the zone correlator) as one JSON document in the file
//! [`FILE_NAME`] of the agent's state directory, beside the sled store of the outbox.
//!
//! The daemon saves it periodically ([`SAVE_EVERY`]) and on shutdown, and restores it at
//! start. Invariants:
//! - A save replaces the file crash-safely (`atomic_file.rs`: temporary file through a buffered
//!   writer, `fsync`, rename, `fsync` of the directory): after a crash the file holds the
//!   previous save or this one, whole. A stray temporary file is removed at load.
//! - The state is written straight from the pipeline ([`Pipeline::write_state`], no
//!   `serde_json::Value` tree of every sensor) into the file, not into sled: sled's log
//!   buffers and page cache raised the agent's peak by ≈ 14 MiB at 500 devices for a 6 MiB
//!   state (BENCHMARKS.md, "Memory, part 6").
//! - Agents before the file kept the same JSON as the record `pipeline` of the sled tree
//!   `detector_state`. Load falls back to that record when there is no file (an upgraded
//!   agent keeps its detectors' state), and the first save to the file removes it.
//! - A state that does not read or decode is reported, naming the file, and ignored: the
//!   detectors then start fresh, which costs re-learning, never correctness of the outbox.
//!   The next save replaces the bad file.

mod atomic_file;

pub use atomic_file::FileError;

use crate::pipeline::{Pipeline, PipelineState};
use coldaisle_store::{KvStore, StoreError, WriteBatch};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The file holding the detector state, in the agent's state directory.
pub const FILE_NAME: &str = "detector_state.json";

/// How often the daemon stores the detector state while running.
pub const SAVE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The sled tree and key of the state as agents before [`FILE_NAME`] stored it.
const TREE: &str = "detector_state";
const KEY: &[u8] = b"pipeline";

/// Failures loading or storing the state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The sled store (the old record) failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The state file does not read or does not decode (truncated, corrupt).
    #[error("detector state file {} does not decode: {error}", path.display())]
    CorruptFile {
        /// The state file.
        path: PathBuf,
        /// What the decoder said (with the line and column).
        error: String,
    },
    /// The old sled record does not decode.
    #[error("stored detector state (sled tree `{TREE}`) does not decode: {0}")]
    CorruptRecord(String),
    /// Writing, syncing or renaming the state file failed (nothing was replaced).
    #[error("detector state not saved: {0}")]
    File(#[from] FileError),
}

/// Where a loaded state came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The state file.
    File,
    /// The sled record of an agent before the state file (an upgrade).
    SledRecord,
}

/// The detector state's place: the state file, and the sled store that may still hold the
/// record of an agent before the file.
pub struct StateStore {
    /// `state_dir/`[`FILE_NAME`].
    path: PathBuf,
    /// The agent's sled store (the outbox's), read for the old record and cleared of it.
    legacy: Arc<dyn KvStore>,
    /// Whether the sled store may still hold the old record: true until a save removed it.
    legacy_record: bool,
}

impl StateStore {
    /// The state of the agent whose state directory is `state_dir` and whose sled store is
    /// `store`. Touches nothing.
    pub fn new(state_dir: &Path, store: Arc<dyn KvStore>) -> StateStore {
        StateStore {
            path: state_dir.join(FILE_NAME),
            legacy: store,
            legacy_record: true,
        }
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the stored state, if any: the file, or without a file the old sled record.
    /// Removes a temporary file a crashed save left (logged).
    ///
    /// # Errors
    /// The file or the record does not decode, or the file system or the store failed.
    pub fn load(&self) -> Result<Option<(PipelineState, Source)>, StateError> {
        if atomic_file::remove_stray_temp(&self.path)? {
            tracing::warn!(
                path = %self.path.display(),
                "removed the temporary detector state file of a save that did not finish"
            );
        }
        let file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(load_record(self.legacy.as_ref())?.map(|s| (s, Source::SledRecord)));
            }
            Err(source) => {
                return Err(FileError {
                    op: "opening",
                    path: self.path.clone(),
                    source,
                }
                .into())
            }
        };
        serde_json::from_reader(std::io::BufReader::new(file))
            .map(|state| Some((state, Source::File)))
            .map_err(|e| StateError::CorruptFile {
                path: self.path.clone(),
                error: e.to_string(),
            })
    }

    /// Writes `pipeline`'s state to the file (replacing it crash-safely), then, the first
    /// time, removes the old sled record. Returns the bytes written.
    ///
    /// # Errors
    /// The file could not be written (the previous one is kept), or the sled store failed
    /// removing the old record (the file is written; the next save tries again).
    pub fn save(&mut self, pipeline: &Pipeline) -> Result<u64, StateError> {
        let len = atomic_file::replace(&self.path, |out| {
            pipeline.write_state(out).map_err(std::io::Error::from)
        })?;
        if self.legacy_record {
            let mut batch = WriteBatch::default();
            batch.remove(KEY);
            self.legacy.apply(TREE, batch)?;
            self.legacy.flush()?;
            self.legacy_record = false;
        }
        Ok(len)
    }

    /// Restores the stored state into `pipeline`, logging what happened (never fails the
    /// start: a state that does not load leaves the detectors fresh).
    pub fn restore_into(&self, pipeline: &mut Pipeline) {
        match self.load() {
            Ok(Some((state, source))) => {
                let restored = pipeline.restore_state(&state);
                tracing::info!(
                    restored,
                    sensors = state.sensors.len(),
                    ?source,
                    path = %self.path.display(),
                    "detector state restored"
                );
            }
            Ok(None) => tracing::info!(
                path = %self.path.display(),
                "no stored detector state: detectors start fresh"
            ),
            Err(e) => tracing::warn!(error = %e, "detector state ignored: detectors start fresh"),
        }
    }

    /// Stores the pipeline's state, logging a failure (the next save retries).
    pub fn save_logged(&mut self, pipeline: &Pipeline) {
        match self.save(pipeline) {
            Ok(bytes) => tracing::debug!(bytes, flaps = pipeline.flaps(), "detector state saved"),
            Err(e) => tracing::warn!(error = %e, "saving the detector state failed"),
        }
    }
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.path)
            .field("legacy_record", &self.legacy_record)
            .finish_non_exhaustive()
    }
}

/// Loads the old sled record, if any.
fn load_record(store: &dyn KvStore) -> Result<Option<PipelineState>, StateError> {
    let Some(bytes) = store.get(TREE, KEY)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StateError::CorruptRecord(e.to_string()))
}

/// Stores `state` as the old sled record, as agents before the state file did: for tests of
/// the upgrade and for `state_save_bench`'s `sled-one` comparison.
#[doc(hidden)]
pub fn save_record(store: &dyn KvStore, bytes: Vec<u8>) -> Result<(), StoreError> {
    let mut batch = WriteBatch::default();
    batch.insert(KEY, bytes);
    store.apply(TREE, batch)?;
    store.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poller::PollOutcome;
    use coldaisle_config::AgentConfig;
    use coldaisle_core::wire::Payload;
    use coldaisle_core::{EventState, Timestamp};
    use coldaisle_store::{MemoryStore, SledStore};

    fn config() -> AgentConfig {
        AgentConfig::from_str(
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
            Path::new("t.toml"),
        )
        .expect("config")
    }

    fn poll(s: i64, v: f64) -> PollOutcome {
        PollOutcome {
            device: 0,
            ts: Timestamp(s * 1000),
            result: Ok(vec![Ok(v)]),
        }
    }

    fn states(payloads: Vec<Payload>) -> Vec<EventState> {
        payloads
            .into_iter()
            .filter_map(|p| match p {
                Payload::SensorEvent(e) => Some(e.state),
                _ => None,
            })
            .collect()
    }

    /// A pipeline whose sensor `r1` is raised (above its 27 °C limit).
    fn raised() -> Pipeline {
        let mut p = Pipeline::new(&config());
        assert_eq!(states(p.observe(&poll(0, 30.0))), vec![EventState::Raised]);
        p
    }

    /// `p` holds the raise of [`raised`]: no second raise while hot, a clear when cool.
    fn assert_holds_the_raise(mut p: Pipeline) {
        assert!(
            states(p.observe(&poll(10, 30.0))).is_empty(),
            "no second raise"
        );
        assert_eq!(
            states(p.observe(&poll(20, 20.0))),
            vec![EventState::Cleared]
        );
    }

    fn sled(dir: &Path) -> Arc<dyn KvStore> {
        Arc::new(SledStore::open(&dir.join("outbox")).expect("open sled"))
    }

    #[test]
    fn an_open_raise_survives_a_restart_through_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut state = StateStore::new(dir.path(), sled(dir.path()));
            let written = state.save(&raised()).expect("saved");
            let on_disk = std::fs::metadata(dir.path().join(FILE_NAME)).expect("file");
            assert_eq!(on_disk.len(), written);
        }
        let state = StateStore::new(dir.path(), sled(dir.path()));
        let (loaded, source) = state.load().expect("loads").expect("stored");
        assert_eq!(source, Source::File);
        assert_eq!(loaded, raised().export_state());
        let mut p = Pipeline::new(&config());
        state.restore_into(&mut p);
        assert_holds_the_raise(p);
    }

    #[test]
    fn an_upgraded_agent_restores_the_sled_record_and_its_first_save_removes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = sled(dir.path());
        let old = serde_json::to_vec(&raised().export_state()).expect("json");
        save_record(store.as_ref(), old).expect("old record");
        let mut state = StateStore::new(dir.path(), store.clone());
        let (_, source) = state.load().expect("loads").expect("stored");
        assert_eq!(source, Source::SledRecord);
        let mut p = Pipeline::new(&config());
        state.restore_into(&mut p);
        state.save(&p).expect("saved");
        assert_eq!(store.get(TREE, KEY).expect("get"), None, "record removed");
        assert!(dir.path().join(FILE_NAME).exists());
        let (_, source) = state.load().expect("loads").expect("stored");
        assert_eq!(source, Source::File);
        assert_holds_the_raise(p);
    }

    #[test]
    fn a_crash_between_write_and_rename_keeps_the_previous_save_and_cleans_the_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut state = StateStore::new(dir.path(), Arc::new(MemoryStore::default()));
        state.save(&raised()).expect("saved");
        // The next save crashed after writing part of its temporary file.
        let temp = atomic_file::temp_path(state.path());
        std::fs::write(&temp, br#"{"sensors":{"r1":{"thresh"#).expect("stray");
        let (loaded, source) = state.load().expect("loads").expect("stored");
        assert_eq!(source, Source::File);
        assert_eq!(loaded, raised().export_state());
        assert!(!temp.exists(), "stray temporary file removed");
        let mut p = Pipeline::new(&config());
        state.restore_into(&mut p);
        assert_holds_the_raise(p);
    }

    #[test]
    fn a_truncated_or_corrupt_file_is_an_error_naming_it_and_the_detectors_start_fresh() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut state = StateStore::new(dir.path(), Arc::new(MemoryStore::default()));
        state.save(&raised()).expect("saved");
        let whole = std::fs::read(state.path()).expect("read");
        for bad in [&whole[..whole.len() / 2], b"\0\0\0\0", b""] {
            std::fs::write(state.path(), bad).expect("damage");
            let err = state.load().expect_err("does not decode");
            assert!(matches!(err, StateError::CorruptFile { .. }), "{err:?}");
            assert!(err.to_string().contains(FILE_NAME), "{err}");
            let mut p = Pipeline::new(&config());
            state.restore_into(&mut p);
            assert_eq!(
                states(p.observe(&poll(10, 30.0))),
                vec![EventState::Raised],
                "fresh detectors raise again"
            );
        }
        // The next save replaces the bad file.
        state.save(&raised()).expect("saved");
        assert!(state.load().expect("loads").is_some());
    }

    #[test]
    fn a_corrupt_sled_record_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn KvStore> = Arc::new(MemoryStore::default());
        let state = StateStore::new(dir.path(), store.clone());
        assert!(state.load().expect("nothing stored").is_none());
        save_record(store.as_ref(), b"{not json".to_vec()).expect("record");
        assert!(matches!(state.load(), Err(StateError::CorruptRecord(_))));
    }

    #[test]
    fn a_failed_save_keeps_the_previous_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut state = StateStore::new(dir.path(), Arc::new(MemoryStore::default()));
        state.save(&raised()).expect("saved");
        let before = std::fs::read(state.path()).expect("read");
        // A directory where the temporary file goes: creating it fails.
        std::fs::create_dir(atomic_file::temp_path(state.path())).expect("blocker");
        let err = state.save(&Pipeline::new(&config())).expect_err("fails");
        assert!(matches!(err, StateError::File(_)), "{err:?}");
        assert_eq!(std::fs::read(state.path()).expect("read"), before);
    }
}
