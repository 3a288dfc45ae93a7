//! The durable log of operator actions: tree `actions` of the collector's [`KvStore`], key the
//! action id (big-endian u64), value the [`OperatorAction`] as JSON.
//!
//! Invariants: ids are strictly increasing and never reused (the next id is one above the last
//! key); an action is flushed before [`ActionLog::append`] returns, so an action the API
//! confirmed survives a crash and is applied again by the rebuild at startup.
//!
//! Several collectors may append to one database (site partitions, a standby): the id is
//! claimed with an atomic insert-if-absent ([`insert_with_next_id`]), retried one higher when
//! another writer took it, so no action ever overwrites another. Ids stay one global dense
//! sequence that operators can read and quote; ids stored before this scheme stay valid.
//! Within one process a mutex still serialises appends, so they do not race each other.

use crate::actions::{ActionKind, OperatorAction};
use coldaisle_core::Timestamp;
use coldaisle_store::{insert_with_next_id, KvStore, StoreError};
use std::sync::{Arc, Mutex};

/// The tree of operator actions (key: id big-endian).
pub const ACTIONS: &str = "actions";

/// Handle on the action log (cheap to clone).
#[derive(Clone)]
pub struct ActionLog {
    /// The store holding the tree.
    kv: Arc<dyn KvStore>,
    /// Serialises appends (id allocation + write).
    append: Arc<Mutex<()>>,
}

impl std::fmt::Debug for ActionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ActionLog")
    }
}

fn store_error(operation: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError {
        operation,
        tree: ACTIONS.into(),
        message: e.to_string(),
    }
}

impl ActionLog {
    /// The log in `kv`.
    pub fn new(kv: Arc<dyn KvStore>) -> Self {
        ActionLog {
            kv,
            append: Arc::new(Mutex::new(())),
        }
    }

    /// Stores a new action with the next id and flushes. Blocking: call from a blocking context.
    pub fn append(
        &self,
        at: Timestamp,
        actor: &str,
        kind: ActionKind,
    ) -> Result<OperatorAction, StoreError> {
        let _guard = self.append.lock().map_err(|e| store_error("lock", e))?;
        let mut action = OperatorAction {
            id: 0,
            at,
            actor: actor.to_string(),
            kind,
        };
        action.id = insert_with_next_id(self.kv.as_ref(), ACTIONS, |id| {
            action.id = id;
            serde_json::to_vec(&action).map_err(|e| store_error("encode", e))
        })?;
        self.kv.flush()?;
        Ok(action)
    }

    /// Every stored action in id order. Undecodable entries are logged by key and skipped,
    /// never deleted.
    pub fn all(&self) -> Result<Vec<OperatorAction>, StoreError> {
        Ok(self
            .kv
            .scan(ACTIONS, b"", usize::MAX)?
            .into_iter()
            .filter_map(|(key, value)| match serde_json::from_slice(&value) {
                Ok(action) => Some(action),
                Err(e) => {
                    tracing::error!(key = ?key, error = %e, "stored operator action does not decode; kept, skipped");
                    None
                }
            })
            .collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use coldaisle_store::MemoryStore;

    #[test]
    fn ids_increase_and_actions_read_back() {
        let kv: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
        let log = ActionLog::new(kv.clone());
        let a = log
            .append(
                Timestamp(5),
                "ann",
                ActionKind::Acknowledge {
                    incident: "inc-1".into(),
                },
            )
            .unwrap();
        let b = log
            .append(
                Timestamp(3),
                "bob",
                ActionKind::NoteIncident {
                    incident: "inc-1".into(),
                    text: "fan".into(),
                },
            )
            .unwrap();
        assert_eq!((a.id, b.id), (1, 2));
        // A second handle on the same store (as after a restart) continues the ids.
        let again = ActionLog::new(kv);
        assert_eq!(again.all().unwrap(), vec![a, b]);
        let c = again
            .append(
                Timestamp(9),
                "cy",
                ActionKind::MarkSla {
                    incident: "inc-1".into(),
                },
            )
            .unwrap();
        assert_eq!(c.id, 3);
    }
}
