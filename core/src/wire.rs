//! Wire contract v1 between agents and the collector (see `shared/DESIGN.md`).
//!
//! | topic | dir | QoS | payload |
//! |---|---|---|---|
//! | `{prefix}/{site}/{agent}/events` | agent → collector | 1 | [`Batch`] |
//! | `{prefix}/{site}/{agent}/ack` | collector → agent | 1 | [`Ack`] (`hello` once per collector connection) |
//! | `{prefix}/{site}/{agent}/status` | agent → all | 1, retained | [`Status`] |
//!
//! Invariants: every record carries its agent, site and a per-agent `seq` that is strictly
//! increasing, never reused and survives restarts. An ack `upto = N` promises that every seq ≤ N
//! is durably stored by the collector. Unknown JSON fields are ignored (forward compatibility).
//!
//! Optional fields added within v1 (absent from older peers, ignored by them):
//! [`Record::instance`] and [`Batch::instance`] (the agent's incarnation), [`Ack::hello`],
//! [`Ack::now`] (the collector's clock) and [`StatusStats::clock_skew_ms`].

use crate::event::{DeviceEvent, ReadingSummary, SensorEvent, ZoneEvent};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// Schema version written in every record and batch.
pub const SCHEMA_VERSION: u32 = 1;

/// Default topic prefix.
pub const DEFAULT_PREFIX: &str = "coldaisle/v1";

/// What a record carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Payload {
    /// A detector transition on one sensor.
    SensorEvent(SensorEvent),
    /// A zone-level correlation.
    ZoneEvent(ZoneEvent),
    /// A device became unreachable or answers again.
    DeviceEvent(DeviceEvent),
    /// Readings of one sensor over an interval.
    ReadingSummary(ReadingSummary),
}

impl Payload {
    /// The event time of the payload (for summaries: the end of the interval).
    pub fn ts(&self) -> Timestamp {
        match self {
            Payload::SensorEvent(e) => e.ts,
            Payload::ZoneEvent(e) => e.ts,
            Payload::DeviceEvent(e) => e.ts,
            Payload::ReadingSummary(s) => s.to,
        }
    }

    /// The `(site, zone)` the payload is about (the collector checks it against the agent's
    /// allowed site and zones).
    pub fn site_zone(&self) -> (&str, &str) {
        match self {
            Payload::SensorEvent(e) => (&e.location.site, &e.location.zone),
            Payload::ZoneEvent(e) => (&e.site, &e.zone),
            Payload::DeviceEvent(e) => (&e.location.site, &e.location.zone),
            Payload::ReadingSummary(s) => (&s.location.site, &s.location.zone),
        }
    }

    /// Moves every time of the payload that is after `limit` back to `limit` (the collector
    /// does this to a record stamped too far ahead of its own clock). Returns the payload's
    /// time before, if it was after `limit`.
    pub fn clamp_time(&mut self, limit: Timestamp) -> Option<Timestamp> {
        let before = self.ts();
        if before <= limit {
            return None;
        }
        match self {
            Payload::SensorEvent(e) => {
                e.ts = e.ts.min(limit);
                e.first_ts = e.first_ts.min(limit);
            }
            Payload::ZoneEvent(e) => {
                e.ts = e.ts.min(limit);
                for evidence in &mut e.evidence {
                    evidence.ts = evidence.ts.min(limit);
                }
            }
            Payload::DeviceEvent(e) => e.ts = e.ts.min(limit),
            Payload::ReadingSummary(s) => {
                s.from = s.from.min(limit);
                s.to = s.to.min(limit);
            }
        }
        Some(before)
    }

    /// True for reading summaries: the first to go when an outbox is over its quota.
    pub fn is_summary(&self) -> bool {
        matches!(self, Payload::ReadingSummary(_))
    }
}

/// One sequenced record from one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Schema version of this record.
    pub schema: u32,
    /// Agent that produced it.
    pub agent: String,
    /// Site of the agent.
    pub site: String,
    /// Per-agent sequence number: strictly increasing, never reused, survives restarts.
    pub seq: u64,
    /// The content.
    pub payload: Payload,
    /// Random id of the agent's state directory (its incarnation), made at its first start.
    /// A new instance id with seqs starting again tells the collector the agent lost its state
    /// and restarted its seqs. Optional: absent from older agents, ignored by older collectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

/// What an agent publishes on its events topic: records in increasing seq order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// Schema version of the batch.
    pub schema: u32,
    /// Agent that sent the batch.
    pub agent: String,
    /// Site of the agent.
    pub site: String,
    /// Lowest seq the agent still holds: every seq below it was acked or dropped by quota, so
    /// the collector may treat seqs below `floor` as settled when computing its ack.
    pub floor: u64,
    /// The records, seq ascending.
    pub records: Vec<Record>,
    /// Seqs above the agent's last ack that the agent dropped (outbox quota, corruption): the
    /// collector counts them as settled, reports them as gaps, and acks past them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<SeqRange>,
    /// The sending agent's instance id (see [`Record::instance`]); every record of the batch
    /// carries the same one. Optional like the records' field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

/// An inclusive range of seqs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqRange {
    /// First seq.
    pub from: u64,
    /// Last seq (inclusive).
    pub to: u64,
}

impl SeqRange {
    /// True if `seq` is inside.
    pub fn contains(&self, seq: u64) -> bool {
        self.from <= seq && seq <= self.to
    }

    /// Number of seqs in the range.
    pub fn len(&self) -> u64 {
        self.to.saturating_sub(self.from) + 1
    }

    /// Never empty (a range holds at least one seq); present for symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The collector's acknowledgement: every seq ≤ `upto` is durably stored centrally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Highest seq such that all seqs up to it are stored.
    pub upto: u64,
    /// Sent once per agent when a collector (re)connects and sees the agent's status: "I am
    /// (back) here", so an agent holding records resends them now instead of at its next
    /// `resend_after` (its resends while no collector was subscribed reached nobody).
    /// Absent (false) in ordinary acks; agents that do not know the field ignore it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hello: bool,
    /// The collector's clock when it sent the ack, so the agent can estimate its own clock
    /// skew ([`StatusStats::clock_skew_ms`]). Optional: absent from older collectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now: Option<Timestamp>,
}

/// Agent status, published retained; the broker publishes the `offline` form as the agent's will.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// `online` or `offline`.
    pub state: String,
    /// Agent id.
    pub agent: String,
    /// Agent version.
    pub version: String,
    /// Hash of the loaded configuration, to spot agents running a stale config.
    pub config_hash: String,
    /// When this status was produced (agent clock).
    pub ts: Timestamp,
    /// Poll and outbox statistics at `ts` (absent from agents older than this field: zeros).
    #[serde(default)]
    pub stats: StatusStats,
}

/// An agent's poll and outbox statistics since its process started, carried by [`Status`].
/// Every field defaults to zero so older and newer agents and collectors interoperate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusStats {
    /// Devices in the config in force.
    pub devices: u64,
    /// Devices whose last poll failed (unreachable, timeout, protocol error).
    pub devices_unreachable: u64,
    /// Device polls that answered, since start.
    pub polls_ok: u64,
    /// Device polls that failed, since start.
    pub polls_failed: u64,
    /// Outbox records not yet acknowledged by the collector.
    pub outbox_pending_records: u64,
    /// Bytes of the records the outbox holds.
    pub outbox_pending_bytes: u64,
    /// Reading summaries the outbox dropped by quota, since start.
    pub dropped_summaries: u64,
    /// Events the outbox dropped by quota, since start.
    pub dropped_events: u64,
    /// Corrupt outbox records removed, since start.
    pub corrupt_records: u64,
    /// The agent's estimate of its clock minus the collector's, in ms, from the latest ack
    /// that carried the collector's time (includes the ack's delivery delay); absent until
    /// then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_skew_ms: Option<i64>,
    /// Outbox writes (append or flush) the disk refused, since start.
    pub outbox_write_failures: u64,
    /// Readings held in memory now because their outbox write failed.
    pub outbox_unwritten: u64,
    /// Readings given up because the in-memory hold was full while writes failed, since start.
    pub outbox_unwritten_dropped: u64,
}

/// Errors decoding a payload received from the network.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The payload is not the JSON we expect.
    #[error("malformed payload: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The payload is well formed but inconsistent.
    #[error("invalid batch: {0}")]
    Invalid(String),
}

impl Batch {
    /// Decodes and checks a batch: records must belong to the sending agent and site and be in
    /// strictly increasing seq order.
    pub fn decode(bytes: &[u8]) -> Result<Batch, WireError> {
        let batch: Batch = serde_json::from_slice(bytes)?;
        let mut previous = None;
        for record in &batch.records {
            if record.instance.is_some() && record.instance != batch.instance {
                return Err(WireError::Invalid(format!(
                    "record seq {} carries instance {:?} inside a batch of instance {:?}",
                    record.seq, record.instance, batch.instance
                )));
            }
            if record.agent != batch.agent || record.site != batch.site {
                return Err(WireError::Invalid(format!(
                    "record seq {} claims agent {}/{} inside a batch of {}/{}",
                    record.seq, record.site, record.agent, batch.site, batch.agent
                )));
            }
            if previous.is_some_and(|p| record.seq <= p) {
                return Err(WireError::Invalid(format!(
                    "seq {} is not above the previous record's seq",
                    record.seq
                )));
            }
            previous = Some(record.seq);
        }
        Ok(batch)
    }
}

/// Topic names for one prefix.
#[derive(Debug, Clone)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    /// Topics under `prefix` (trailing slashes are ignored).
    pub fn new(prefix: &str) -> Self {
        Topics {
            prefix: prefix.trim_end_matches('/').to_string(),
        }
    }

    /// `{prefix}/{site}/{agent}/events`.
    pub fn events(&self, site: &str, agent: &str) -> String {
        format!("{}/{site}/{agent}/events", self.prefix)
    }

    /// `{prefix}/{site}/{agent}/ack`.
    pub fn ack(&self, site: &str, agent: &str) -> String {
        format!("{}/{site}/{agent}/ack", self.prefix)
    }

    /// `{prefix}/{site}/{agent}/status`.
    pub fn status(&self, site: &str, agent: &str) -> String {
        format!("{}/{site}/{agent}/status", self.prefix)
    }

    /// Subscription filter for the events of every agent of `site`, or of all sites (`None`).
    pub fn events_filter(&self, site: Option<&str>) -> String {
        format!("{}/{}/+/events", self.prefix, site.unwrap_or("+"))
    }

    /// Subscription filter for the statuses of every agent of `site`, or of all sites.
    pub fn status_filter(&self, site: Option<&str>) -> String {
        format!("{}/{}/+/status", self.prefix, site.unwrap_or("+"))
    }

    /// Splits an agent topic into `(site, agent, leaf)`, or `None` if it is not ours.
    pub fn parse<'a>(&self, topic: &'a str) -> Option<(&'a str, &'a str, &'a str)> {
        let rest = topic
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix('/')?;
        let mut parts = rest.split('/');
        let site = parts.next()?;
        let agent = parts.next()?;
        let leaf = parts.next()?;
        if parts.next().is_some() || site.is_empty() || agent.is_empty() {
            return None;
        }
        Some((site, agent, leaf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Location, SensorKind};

    fn summary_record(seq: u64) -> Record {
        Record {
            schema: SCHEMA_VERSION,
            agent: "a1".into(),
            site: "s1".into(),
            seq,
            payload: Payload::ReadingSummary(ReadingSummary {
                sensor: "r1-inlet".into(),
                kind: SensorKind::InletTemp,
                location: Location {
                    site: "s1".into(),
                    zone: "Z1".into(),
                    row: None,
                    rack: Some("R1".into()),
                },
                from: Timestamp(1),
                to: Timestamp(2),
                count: 2,
                min: 20.0,
                max: 21.0,
                sum: 41.0,
                last: 21.0,
            }),
            instance: None,
        }
    }

    #[test]
    fn batch_round_trips_and_ignores_unknown_fields() {
        let batch = Batch {
            schema: SCHEMA_VERSION,
            agent: "a1".into(),
            site: "s1".into(),
            floor: 1,
            records: vec![summary_record(1), summary_record(2)],
            dropped: vec![],
            instance: None,
        };
        let mut json: serde_json::Value = serde_json::to_value(&batch).expect("serialise");
        json["future_field"] = serde_json::json!(true);
        let bytes = serde_json::to_vec(&json).expect("serialise");
        assert_eq!(Batch::decode(&bytes).expect("decode"), batch);
    }

    #[test]
    fn batch_rejects_foreign_or_unordered_records() {
        let mut batch = Batch {
            schema: SCHEMA_VERSION,
            agent: "a1".into(),
            site: "s1".into(),
            floor: 1,
            records: vec![summary_record(2), summary_record(2)],
            dropped: vec![],
            instance: None,
        };
        let bytes = serde_json::to_vec(&batch).expect("serialise");
        assert!(matches!(Batch::decode(&bytes), Err(WireError::Invalid(_))));
        batch.records = vec![summary_record(1)];
        batch.agent = "a2".into();
        let bytes = serde_json::to_vec(&batch).expect("serialise");
        assert!(matches!(Batch::decode(&bytes), Err(WireError::Invalid(_))));
        assert!(matches!(
            Batch::decode(b"{not json"),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn clamp_time_moves_only_times_after_the_limit() {
        let mut payload = summary_record(1).payload;
        assert_eq!(payload.clamp_time(Timestamp(5)), None);
        assert_eq!(payload.clamp_time(Timestamp(1)), Some(Timestamp(2)));
        assert_eq!(payload.ts(), Timestamp(1));
        assert!(matches!(payload, Payload::ReadingSummary(ref s) if s.from == Timestamp(1)));
    }

    #[test]
    fn ack_hello_is_optional_on_the_wire() {
        // An ordinary ack is what v1 always was; an old collector's ack parses as no hello.
        let plain = serde_json::to_string(&Ack {
            upto: 7,
            hello: false,
            now: None,
        })
        .unwrap();
        assert_eq!(plain, r#"{"upto":7}"#);
        let old: Ack = serde_json::from_str(r#"{"upto":3}"#).unwrap();
        assert!(!old.hello);
        let hello: Ack = serde_json::from_str(r#"{"upto":3,"hello":true}"#).unwrap();
        assert!(hello.hello);
    }

    #[test]
    fn topics_parse_only_our_shape() {
        let topics = Topics::new("coldaisle/v1/");
        let t = topics.events("s1", "a1");
        assert_eq!(t, "coldaisle/v1/s1/a1/events");
        assert_eq!(topics.parse(&t), Some(("s1", "a1", "events")));
        assert_eq!(topics.parse("coldaisle/v1/s1/a1"), None);
        assert_eq!(topics.parse("other/s1/a1/events"), None);
        assert_eq!(topics.parse("coldaisle/v1/s1/a1/events/x"), None);
    }

    #[test]
    fn status_without_stats_from_an_older_agent_decodes_with_zeros() {
        let old = br#"{"state":"online","agent":"a1","version":"0.1.0","config_hash":"h","ts":5}"#;
        let status: Status = serde_json::from_slice(old).unwrap();
        assert_eq!(status.stats, StatusStats::default());
        let partial = br#"{"state":"online","agent":"a1","version":"0.1.0","config_hash":"h","ts":5,"stats":{"polls_ok":7,"future_field":1}}"#;
        let status: Status = serde_json::from_slice(partial).unwrap();
        assert_eq!(status.stats.polls_ok, 7);
        assert_eq!(status.stats.devices, 0);
    }
}
