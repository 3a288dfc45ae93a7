//! The collector's `records` tree key, `agent id` + `0x00` + seq (8 bytes big-endian), as the
//! `(agent, seq)` columns of the `records` table, and back.
//!
//! Order is preserved: with `agent` compared bytewise (`COLLATE "C"`) and agent ids free of
//! `0x00`, `(agent, seq)` row order equals the byte order of the keys, so an ordered scan from
//! any byte string is a row comparison ([`lower_bound`]). Seqs are stored as `bigint`: a key
//! whose seq does not fit in `0..=i64::MAX` is refused (the collector's seqs stay below 2^62
//! plus offsets, far under it).

/// A `records` key as columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AgentSeq {
    /// The agent id (UTF-8, no `0x00`).
    pub agent: String,
    /// The collector seq.
    pub seq: i64,
}

/// Where an ordered scan of `records` starts, for a `from` of any bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LowerBound {
    /// Rows with `agent >= .0`.
    AgentAtLeast(String),
    /// Rows with `agent > .0`.
    AgentAfter(String),
    /// Rows with `(agent, seq) >= .0`.
    AtLeast(AgentSeq),
}

/// The columns of a stored key; an error (the key is not of the records layout) otherwise.
pub(crate) fn decode(key: &[u8]) -> Result<AgentSeq, String> {
    let (agent, rest) =
        split(key).ok_or_else(|| "key has no 0x00 after the agent id".to_string())?;
    let bytes: [u8; 8] = rest
        .try_into()
        .map_err(|_| format!("key has {} seq bytes, not 8", rest.len()))?;
    let seq = i64::try_from(u64::from_be_bytes(bytes))
        .map_err(|_| "seq above i64::MAX cannot be stored".to_string())?;
    Ok(AgentSeq { agent, seq })
}

/// The key of a row.
pub(crate) fn encode(agent: &str, seq: i64) -> Vec<u8> {
    let mut key = Vec::with_capacity(agent.len() + 9);
    key.extend_from_slice(agent.as_bytes());
    key.push(0);
    // Stored seqs are never negative (table CHECK), so the cast keeps the value.
    key.extend_from_slice(&(seq as u64).to_be_bytes());
    key
}

/// The first row whose key is ≥ `from` (bytewise).
pub(crate) fn lower_bound(from: &[u8]) -> Result<LowerBound, String> {
    let Some((agent, rest)) = split(from) else {
        // No 0x00: every key of an agent ≥ `from` as a string is ≥ `from`, and no other.
        return Ok(LowerBound::AgentAtLeast(utf8(from)?));
    };
    let mut seq = [0u8; 8];
    let n = rest.len().min(8);
    seq[..n].copy_from_slice(&rest[..n]);
    // A shorter seq prefix, zero-padded, is the least seq whose bytes are ≥ it; a longer
    // one (e.g. `visit_from`'s "last key + 0x00") means strictly after its first 8 bytes.
    let least = if rest.len() > 8 {
        u64::from_be_bytes(seq).checked_add(1)
    } else {
        Some(u64::from_be_bytes(seq))
    };
    Ok(match least.and_then(|s| i64::try_from(s).ok()) {
        Some(seq) => LowerBound::AtLeast(AgentSeq { agent, seq }),
        None => LowerBound::AgentAfter(agent),
    })
}

/// Agent id and the bytes after its `0x00`.
fn split(key: &[u8]) -> Option<(String, &[u8])> {
    let zero = key.iter().position(|b| *b == 0)?;
    let agent = utf8(&key[..zero]).ok()?;
    Some((agent, &key[zero + 1..]))
}

fn utf8(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "agent id is not UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_odd_keys_are_refused() {
        let key = encode("rack-7", 42);
        assert_eq!(
            decode(&key),
            Ok(AgentSeq {
                agent: "rack-7".into(),
                seq: 42
            })
        );
        assert!(decode(b"no-separator").is_err());
        assert!(decode(b"a\0short").is_err());
        let mut huge = b"a\0".to_vec();
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(decode(&huge).is_err(), "seq above i64::MAX");
    }

    #[test]
    fn lower_bounds_match_byte_order() {
        let at = |agent: &str, seq| {
            LowerBound::AtLeast(AgentSeq {
                agent: agent.into(),
                seq,
            })
        };
        assert_eq!(
            lower_bound(b""),
            Ok(LowerBound::AgentAtLeast(String::new()))
        );
        assert_eq!(
            lower_bound(b"ab"),
            Ok(LowerBound::AgentAtLeast("ab".into()))
        );
        assert_eq!(lower_bound(b"ab\0"), Ok(at("ab", 0)));
        assert_eq!(lower_bound(&encode("ab", 5)), Ok(at("ab", 5)));
        let mut after = encode("ab", 5);
        after.push(0);
        assert_eq!(lower_bound(&after), Ok(at("ab", 6)));
        assert_eq!(lower_bound(b"ab\0\x01"), Ok(at("ab", 1 << 56)));
        assert_eq!(
            lower_bound(b"ab\0\x80"),
            Ok(LowerBound::AgentAfter("ab".into()))
        );
        let mut last = b"ab\0".to_vec();
        last.extend_from_slice(&(i64::MAX as u64).to_be_bytes());
        last.push(0);
        assert_eq!(lower_bound(&last), Ok(LowerBound::AgentAfter("ab".into())));
    }
}
