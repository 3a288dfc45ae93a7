//! Which agent may write for which site (and zones).
//!
//! Two modes:
//! - **An agents list** (`[[agents]]` in the collector config and/or `agents_file`, reloaded on
//!   SIGHUP): an agent not on it is refused; a listed agent may write only its site, and only
//!   its zones when the entry lists some.
//! - **Trust on first use** (no list): the first site an agent is seen with is recorded
//!   durably (tree `agent_sites`: agent id → [`FirstSeen`] JSON), logged, and enforced from
//!   then on.
//!
//! Either way a batch is checked as a whole: its topic's site and every record's location
//! (site, zone). A refused batch is not stored and not acked (see [`crate::refusal`]).

use crate::refusal::Refusal;
use coldaisle_config::trust::AgentEntry;
use coldaisle_config::{CollectorConfig, ConfigError};
use coldaisle_core::wire::Record;
use coldaisle_core::Timestamp;
use coldaisle_store::{KvStore, StoreError, WriteBatch};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

const AGENT_SITES: &str = "agent_sites";

/// The agents list in force, or trust on first use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentDirectory {
    /// Entries by agent id; `None`: no list configured (trust on first use).
    list: Option<BTreeMap<String, AgentEntry>>,
}

/// Why the agents list could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The `agents_file` did not load.
    #[error(transparent)]
    File(#[from] ConfigError),
    /// An agent is in both the config and the `agents_file`.
    #[error("agent {0} is listed both in [[agents]] and in agents_file")]
    Twice(String),
}

impl AgentDirectory {
    /// The list of `config` (`[[agents]]` plus `agents_file`, read now).
    pub fn from_config(config: &CollectorConfig) -> Result<AgentDirectory, DirectoryError> {
        let mut entries = config.raw.agents.clone();
        if let Some(path) = &config.raw.agents_file {
            entries.extend(coldaisle_config::trust::load_agents_file(path)?);
        }
        if entries.is_empty() && config.raw.agents_file.is_none() {
            return Ok(AgentDirectory::default());
        }
        AgentDirectory::from_entries(entries)
    }

    /// A list made of `entries` (each agent once).
    pub fn from_entries(entries: Vec<AgentEntry>) -> Result<AgentDirectory, DirectoryError> {
        let mut list = BTreeMap::new();
        for entry in entries {
            let id = entry.id.clone();
            if list.insert(id.clone(), entry).is_some() {
                return Err(DirectoryError::Twice(id));
            }
        }
        Ok(AgentDirectory { list: Some(list) })
    }

    /// The entries of the list, by id (`None` under trust on first use).
    pub fn entries(&self) -> Option<impl Iterator<Item = &AgentEntry>> {
        self.list.as_ref().map(|l| l.values())
    }

    /// Checks a batch of `agent` on `site` against the list, or against `first_site` (the
    /// site recorded for the agent, if any) under trust on first use. Pure.
    pub fn admit(
        &self,
        agent: &str,
        site: &str,
        records: &[Record],
        first_site: Option<&str>,
    ) -> Result<(), Refusal> {
        let (expected, zones): (&str, &[String]) = match &self.list {
            Some(list) => {
                let entry = list.get(agent).ok_or(Refusal::UnknownAgent)?;
                (&entry.site, &entry.zones)
            }
            None => (first_site.unwrap_or(site), &[]),
        };
        let wrong_site = |got: &str| Refusal::WrongSite {
            expected: expected.to_string(),
            got: got.to_string(),
        };
        if site != expected {
            return Err(wrong_site(site));
        }
        for record in records {
            let (record_site, zone) = record.payload.site_zone();
            if record_site != expected {
                return Err(wrong_site(record_site));
            }
            if !zones.is_empty() && !zones.iter().any(|z| z == zone) {
                return Err(Refusal::WrongZone {
                    zone: zone.to_string(),
                });
            }
        }
        Ok(())
    }

    /// True when no list is configured.
    pub fn trust_on_first_use(&self) -> bool {
        self.list.is_none()
    }
}

/// The site an agent was first seen with (trust on first use).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirstSeen {
    /// The site.
    pub site: String,
    /// When (collector clock).
    pub at: Timestamp,
}

/// The durable record of first-seen sites (tree `agent_sites`).
#[derive(Clone)]
pub struct SiteBook {
    kv: Arc<dyn KvStore>,
}

impl std::fmt::Debug for SiteBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SiteBook")
    }
}

impl SiteBook {
    /// The book in `kv`.
    pub fn new(kv: Arc<dyn KvStore>) -> SiteBook {
        SiteBook { kv }
    }

    /// The site `agent` was first seen with, if recorded.
    pub fn get(&self, agent: &str) -> Result<Option<FirstSeen>, StoreError> {
        Ok(self
            .kv
            .get(AGENT_SITES, agent.as_bytes())?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Records the first site of `agent`. Not flushed: the caller flushes with the batch that
    /// made it (before any ack).
    pub fn record(&self, agent: &str, first: &FirstSeen) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.insert(
            agent.as_bytes().to_vec(),
            serde_json::to_vec(first).unwrap_or_default(),
        );
        self.kv.apply(AGENT_SITES, batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldaisle_core::wire::{Payload, SCHEMA_VERSION};
    use coldaisle_core::{DeviceEvent, EventState, Location};

    fn record(site: &str, zone: &str) -> Record {
        Record {
            schema: SCHEMA_VERSION,
            agent: "a1".into(),
            site: "s1".into(),
            seq: 1,
            payload: Payload::DeviceEvent(DeviceEvent {
                device: "d".into(),
                location: Location {
                    site: site.into(),
                    zone: zone.into(),
                    row: None,
                    rack: None,
                },
                state: EventState::Raised,
                reason: String::new(),
                ts: Timestamp(1),
            }),
            instance: None,
        }
    }

    fn entry(id: &str, site: &str, zones: &[&str]) -> AgentEntry {
        AgentEntry {
            id: id.into(),
            site: site.into(),
            zones: zones.iter().map(|z| z.to_string()).collect(),
        }
    }

    #[test]
    fn a_list_confines_agents_to_their_site_and_zones() {
        let dir =
            AgentDirectory::from_entries(vec![entry("a1", "s1", &["Z1"]), entry("a2", "s2", &[])])
                .expect("list");
        assert_eq!(dir.admit("a1", "s1", &[record("s1", "Z1")], None), Ok(()));
        assert_eq!(
            dir.admit("a1", "s1", &[record("s1", "Z2")], None),
            Err(Refusal::WrongZone { zone: "Z2".into() })
        );
        assert_eq!(
            dir.admit("a1", "s1", &[record("s2", "Z1")], None)
                .map_err(|r| r.reason()),
            Err("wrong_site")
        );
        assert_eq!(
            dir.admit("a1", "s2", &[], None).map_err(|r| r.reason()),
            Err("wrong_site")
        );
        assert_eq!(dir.admit("a2", "s2", &[record("s2", "any")], None), Ok(()));
        assert_eq!(dir.admit("a3", "s1", &[], None), Err(Refusal::UnknownAgent));
        assert!(matches!(
            AgentDirectory::from_entries(vec![entry("a1", "s1", &[]), entry("a1", "s2", &[])]),
            Err(DirectoryError::Twice(_))
        ));
    }

    #[test]
    fn without_a_list_the_first_site_is_enforced() {
        let dir = AgentDirectory::default();
        assert!(dir.trust_on_first_use());
        // First contact: any site, but records must match the topic's site.
        assert_eq!(dir.admit("a1", "s1", &[record("s1", "Z1")], None), Ok(()));
        assert_eq!(
            dir.admit("a1", "s1", &[record("s9", "Z1")], None)
                .map_err(|r| r.reason()),
            Err("wrong_site")
        );
        assert_eq!(dir.admit("a1", "s1", &[], Some("s1")), Ok(()));
        assert_eq!(
            dir.admit("a1", "s2", &[record("s2", "Z1")], Some("s1")),
            Err(Refusal::WrongSite {
                expected: "s1".into(),
                got: "s2".into()
            })
        );
    }
}
