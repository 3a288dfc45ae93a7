//! What the collector accepts from agents: ingest limits (`[ingest]`) and the agent list
//! (`[[agents]]` in the collector config and/or an `agents_file`), mapping each agent id to
//! its site and optionally its zones.

use crate::error::{ConfigError, KeyPath, Problem};
use crate::source::SourceFile;
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// `[ingest]`: bounds on what one agent batch may carry. A batch over a bound is refused
/// (counted per agent with the key's name as its reason) and never acked.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Most records in one batch (agents send at most 500).
    #[serde(default = "default_max_batch_records")]
    pub max_batch_records: usize,
    /// Most bytes of one batch payload, checked before it is decoded (agents send about
    /// 256 KiB at most).
    #[serde(default = "default_max_batch_bytes")]
    pub max_batch_bytes: usize,
    /// Most bytes of one record, as JSON.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: usize,
    /// Most seqs that a batch may claim beyond the highest seq the collector has seen from the
    /// agent (its `dropped` ranges): an outbox that dropped more than this while the collector
    /// heard nothing is refused rather than acked blindly.
    #[serde(default = "default_max_dropped_span")]
    pub max_dropped_span: u64,
    /// A record stamped further than this ahead of the collector's clock is stored and
    /// flagged, but never moves incident or problem time.
    #[serde(default = "default_max_clock_skew", with = "humantime_serde")]
    pub max_clock_skew: Duration,
}

fn default_max_batch_records() -> usize {
    2_000
}
fn default_max_batch_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_max_record_bytes() -> usize {
    64 * 1024
}
fn default_max_dropped_span() -> u64 {
    10_000_000
}
fn default_max_clock_skew() -> Duration {
    Duration::from_secs(120)
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_batch_records: default_max_batch_records(),
            max_batch_bytes: default_max_batch_bytes(),
            max_record_bytes: default_max_record_bytes(),
            max_dropped_span: default_max_dropped_span(),
            max_clock_skew: default_max_clock_skew(),
        }
    }
}

/// One `[[agents]]` entry: an agent and where it may write.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentEntry {
    /// The agent's `agent_id` (also its MQTT user name in the shipped ACL).
    pub id: String,
    /// The one site it may write events for.
    pub site: String,
    /// Zones of that site it may write events for; empty: any zone of the site.
    #[serde(default)]
    pub zones: Vec<String>,
}

/// An `agents_file`: only `[[agents]]` entries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentsFile {
    #[serde(default)]
    agents: Vec<AgentEntry>,
}

/// Loads and validates an `agents_file` (reloaded on SIGHUP by the collector).
pub fn load_agents_file(path: &Path) -> Result<Vec<AgentEntry>, ConfigError> {
    parse_agents(&SourceFile::read(path)?)
}

fn parse_agents(file: &SourceFile) -> Result<Vec<AgentEntry>, ConfigError> {
    let parsed: AgentsFile = file.parse()?;
    validate_agents(&parsed.agents, &KeyPath::default()).map_err(|p| file.invalid(p))?;
    Ok(parsed.agents)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['/', '+', '#', ' '])
}

/// Checks ids, sites and zones of an agent list: names usable in topics, each id once.
pub(crate) fn validate_agents(agents: &[AgentEntry], root: &KeyPath) -> Result<(), Problem> {
    let mut seen = std::collections::BTreeSet::new();
    for (i, agent) in agents.iter().enumerate() {
        let at = root.key("agents").index(i);
        if !valid_name(&agent.id) {
            return Err(Problem::new(
                at.key("id"),
                "must be non-empty and contain no '/', '+', '#' or spaces",
            ));
        }
        if !seen.insert(agent.id.as_str()) {
            return Err(Problem::new(
                at.key("id"),
                format!("agent {} is listed twice", agent.id),
            ));
        }
        if !valid_name(&agent.site) {
            return Err(Problem::new(
                at.key("site"),
                "must be non-empty and contain no '/', '+', '#' or spaces",
            ));
        }
        if agent.zones.iter().any(|z| z.is_empty()) {
            return Err(Problem::new(
                at.key("zones"),
                "a zone name must be non-empty",
            ));
        }
    }
    Ok(())
}

/// Checks the `[ingest]` bounds.
pub(crate) fn validate_ingest(ingest: &IngestConfig, root: &KeyPath) -> Result<(), Problem> {
    let at = root.key("ingest");
    for (key, value) in [
        ("max_batch_records", ingest.max_batch_records as u64),
        ("max_batch_bytes", ingest.max_batch_bytes as u64),
        ("max_record_bytes", ingest.max_record_bytes as u64),
        ("max_dropped_span", ingest.max_dropped_span),
    ] {
        if value == 0 {
            return Err(Problem::new(at.key(key), "must be at least 1"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CollectorConfig;

    #[test]
    fn collector_ingest_and_agents_errors_name_their_key() {
        let base = "collector_id = \"c\"\nstate_dir = \"/x\"\n";
        let load = |extra: &str| {
            CollectorConfig::from_str(
                &format!("{base}{extra}\n[mqtt]\nhost = \"h\"\n"),
                Path::new("collector.toml"),
            )
        };
        let err = load("[ingest]\nmax_batch_records = 0").expect_err("zero");
        assert_eq!(err.key(), Some("ingest.max_batch_records"));
        let err = load("[[agents]]\nid = \"a/1\"\nsite = \"s1\"").expect_err("slash");
        assert_eq!(err.key(), Some("agents[0].id"));
        let ok = load("[ingest]\nmax_clock_skew = \"30s\"\n[[agents]]\nid = \"a1\"\nsite = \"s1\"")
            .expect("valid");
        assert_eq!(ok.raw.ingest.max_clock_skew, Duration::from_secs(30));
        assert_eq!(ok.raw.ingest.max_batch_records, 2_000);
        assert_eq!(ok.raw.agents[0].site, "s1");
    }

    #[test]
    fn agents_file_is_validated_with_its_line() {
        let file = |text: &str| SourceFile {
            path: "agents.toml".into(),
            text: text.to_string(),
        };
        let twice = "[[agents]]\nid = \"a1\"\nsite = \"dc1\"\nzones = [\"Z1\"]\n\n[[agents]]\nid = \"a1\"\nsite = \"dc2\"\n";
        let err = parse_agents(&file(twice)).expect_err("duplicate id");
        assert_eq!(err.key(), Some("agents[1].id"));
        assert_eq!(err.line(), Some(7));
        let agents =
            parse_agents(&file("[[agents]]\nid = \"a1\"\nsite = \"dc1\"\n")).expect("valid");
        assert_eq!(agents[0].site, "dc1");
        assert!(agents[0].zones.is_empty());
    }
}
