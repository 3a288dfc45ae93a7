//! The collector's shared model: the stored event and its order key, content-derived ids, the
//! engine's actor name and the error of an operator action that applies nowhere.
//!
//! Every engine (incidents, problems, actions, cause, chronicle) depends on this module and this
//! module on none of them, so dependencies run one way:
//! model → engines → analysis → report / notify.

pub mod event_body;

use coldaisle_core::wire::{Payload, Record, SCHEMA_VERSION};
use coldaisle_core::{Fingerprint, Timestamp};
use serde::{Deserialize, Serialize};

/// One sequenced record as the collector stored it: the unit the analysis engines consume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Agent that produced the record.
    pub agent: String,
    /// Per-agent sequence number; `(agent, seq)` identifies the record.
    pub seq: u64,
    /// The content.
    pub payload: Payload,
}

/// Total order in which events are applied: event time, then agent, then seq.
pub type OrderKey = (Timestamp, String, u64);

impl StoredEvent {
    /// The key this event is applied in order of.
    pub fn order_key(&self) -> OrderKey {
        (self.payload.ts(), self.agent.clone(), self.seq)
    }

    /// The record its agent sends for it (current schema, no instance id), from `site`: how
    /// tests and benchmarks store an event they made.
    pub fn into_record(self, site: &str) -> Record {
        Record {
            schema: SCHEMA_VERSION,
            agent: self.agent,
            site: site.into(),
            seq: self.seq,
            payload: self.payload,
            instance: None,
        }
    }
}

/// The actor named on state changes the engine decides itself.
pub const ENGINE_ACTOR: &str = "coldaisle";

/// Why an operator action was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ActionError {
    /// No incident of that id exists (at the action's time).
    #[error("no incident {0}")]
    UnknownIncident(String),
    /// The incident already ended before the action's time.
    #[error("incident {id} is already resolved (at {resolved_at})")]
    AlreadyResolved {
        /// Incident id.
        id: String,
        /// When it resolved.
        resolved_at: Timestamp,
    },
    /// No problem of that id exists (at the action's time).
    #[error("no problem {0}")]
    UnknownProblem(String),
    /// The action is not about this engine's records.
    #[error("action is not about an incident")]
    NotAnIncidentAction,
}

/// `{prefix}-{site}-{zone}-{category}-{millis}`, lowercase, every character outside
/// `[a-z0-9-]` replaced by `-`. Shared by incidents and problems.
pub(crate) fn content_id(prefix: &str, fingerprint: &Fingerprint, at: Timestamp) -> String {
    sanitize(&format!(
        "{prefix}-{}-{}-{}-{}",
        fingerprint.site,
        fingerprint.zone,
        fingerprint.category,
        at.millis()
    ))
}

/// `raw` lowercased, every character outside `[a-z0-9-]` replaced by `-` (the alphabet of ids).
pub(crate) fn sanitize(raw: &str) -> String {
    raw.chars()
        .map(|ch| {
            let ch = ch.to_ascii_lowercase();
            if ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' {
                ch
            } else {
                '-'
            }
        })
        .collect()
}

/// 32-bit FNV-1a: a stable hash (unlike `std`'s, which may change between releases).
pub(crate) fn fnv1a32(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// (De)serialises a [`Duration`] as a humantime string such as `15m` or `30days`, for the rules
/// of both engines (the collector depends on `humantime`, not on `humantime-serde`).
pub(crate) mod duration_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// Like [`duration_text`] for an optional duration (`null` when absent).
pub(crate) mod optional_duration_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| humantime::parse_duration(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Serde for maps whose keys are not strings (JSON maps need string keys): a list of
/// `[key, value]` pairs. Use with `#[serde(with = "crate::model::pairs")]` on checkpointed state.
pub(crate) mod pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes the map as a sequence of pairs, in its iteration order.
    pub fn serialize<'a, M, K, V, S>(map: &'a M, serializer: S) -> Result<S::Ok, S::Error>
    where
        &'a M: IntoIterator<Item = (&'a K, &'a V)>,
        K: Serialize + 'a,
        V: Serialize + 'a,
        S: Serializer,
    {
        serializer.collect_seq(map)
    }

    /// Reads a sequence of pairs into the map.
    pub fn deserialize<'de, M, K, V, D>(deserializer: D) -> Result<M, D::Error>
    where
        M: FromIterator<(K, V)>,
        K: Deserialize<'de>,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}
