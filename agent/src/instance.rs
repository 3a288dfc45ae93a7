//! The agent's instance id: a random id made at the first start of a state directory and kept
//! in its store (tree `instance`). Every record carries it
//! ([`coldaisle_core::wire::Record::instance`]), so a collector can tell an agent that lost
//! its state directory (and restarts its seqs at 1) from one resending old records.

use coldaisle_store::{KvStore, StoreError, WriteBatch};
use std::hash::{BuildHasher, Hasher};

const TREE: &str = "instance";
const KEY: &[u8] = b"id";

/// The stored instance id, or `fresh()` stored (and flushed) now if there is none.
pub fn load_or_create(
    store: &dyn KvStore,
    fresh: impl FnOnce() -> String,
) -> Result<String, StoreError> {
    if let Some(id) = store
        .get(TREE, KEY)?
        .and_then(|v| String::from_utf8(v).ok())
        .filter(|id| !id.is_empty())
    {
        return Ok(id);
    }
    let id = fresh();
    let mut batch = WriteBatch::default();
    batch.insert(KEY.to_vec(), id.as_bytes().to_vec());
    store.apply(TREE, batch)?;
    store.flush()?;
    Ok(id)
}

/// 128 random bits as 32 hex digits, from the standard library's per-process random hasher
/// keys (seeded by the OS), mixed with the clock and the process id.
pub fn random_id() -> String {
    let mut halves = [0u64; 2];
    for (i, half) in halves.iter_mut().enumerate() {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_usize(i);
        hasher.write_u32(std::process::id());
        if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            hasher.write_u128(d.as_nanos());
        }
        *half = hasher.finish();
    }
    format!("{:016x}{:016x}", halves[0], halves[1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldaisle_store::MemoryStore;

    #[test]
    fn made_once_then_kept() {
        let store = MemoryStore::new();
        let first = load_or_create(&store, || "abc".into()).expect("create");
        assert_eq!(first, "abc");
        let again = load_or_create(&store, || "other".into()).expect("load");
        assert_eq!(again, "abc");
    }

    #[test]
    fn random_ids_differ_and_are_hex() {
        let (a, b) = (random_id(), random_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
