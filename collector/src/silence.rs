//! Agents that went silent: no batch and no status from them for longer than
//! `agent_silence`. The API shows each agent with its last activity and a `silent` flag; a
//! watcher task logs when an agent turns silent and when it comes back. Pure: time passed in.
//!
//! An agent known only from the store (nothing received since the collector started) counts
//! from the collector's start, so a restart does not flag the whole fleet at once.

use crate::state::{AgentInfo, SharedState};
use coldaisle_core::Timestamp;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::sync::watch;

/// Default of `agent_silence`.
pub const DEFAULT_AGENT_SILENCE: Duration = Duration::from_secs(5 * 60);

/// How silence is judged: the threshold and the collector's start (the baseline of agents
/// not heard from since).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SilenceRule {
    /// Longest gap without a batch or a status before an agent is silent.
    pub silence: Duration,
    /// When the collector started.
    pub started: Timestamp,
}

impl SilenceRule {
    /// The last time anything arrived from the agent (batch or status, collector clock).
    pub fn last_activity(info: &AgentInfo) -> Option<Timestamp> {
        info.last_seen.max(info.status_at)
    }

    /// Whether the agent is silent at `now`.
    pub fn is_silent(&self, info: &AgentInfo, now: Timestamp) -> bool {
        let since = Self::last_activity(info).unwrap_or(self.started);
        now.since(since) > self.silence
    }
}

/// One agent as the API shows it: what the collector knows, plus its silence.
#[derive(Debug, Serialize)]
pub struct AgentView<'a> {
    /// What the collector knows of the agent (last status, last batch time, ledger).
    #[serde(flatten)]
    pub info: &'a AgentInfo,
    /// Last batch or status (collector clock); absent when nothing arrived since start.
    pub last_activity: Option<Timestamp>,
    /// No batch or status for longer than `agent_silence`.
    pub silent: bool,
}

/// The agents as the API shows them, optionally only the silent (or only the live) ones.
pub fn views<'a>(
    agents: &'a BTreeMap<String, AgentInfo>,
    rule: &SilenceRule,
    now: Timestamp,
    only_silent: Option<bool>,
) -> BTreeMap<&'a str, AgentView<'a>> {
    agents
        .iter()
        .map(|(id, info)| {
            let view = AgentView {
                info,
                last_activity: SilenceRule::last_activity(info),
                silent: rule.is_silent(info, now),
            };
            (id.as_str(), view)
        })
        .filter(|(_, v)| only_silent.is_none_or(|s| v.silent == s))
        .collect()
}

/// An agent changing side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Nothing arrived from the agent for longer than the threshold.
    TurnedSilent(String),
    /// A silent agent sent something again.
    CameBack(String),
}

/// The silent agents seen at the last check, to report changes once.
#[derive(Debug, Default)]
pub struct SilenceWatch {
    silent: BTreeSet<String>,
}

impl SilenceWatch {
    /// Compares the agents at `now` with the last check; returns the changes.
    pub fn check(
        &mut self,
        agents: &BTreeMap<String, AgentInfo>,
        rule: &SilenceRule,
        now: Timestamp,
    ) -> Vec<Transition> {
        let silent: BTreeSet<String> = agents
            .iter()
            .filter(|(_, info)| rule.is_silent(info, now))
            .map(|(id, _)| id.clone())
            .collect();
        let mut changes: Vec<Transition> = silent
            .difference(&self.silent)
            .map(|id| Transition::TurnedSilent(id.clone()))
            .collect();
        changes.extend(
            self.silent
                .difference(&silent)
                .filter(|id| agents.contains_key(*id))
                .map(|id| Transition::CameBack(id.clone())),
        );
        self.silent = silent;
        changes
    }
}

/// Checks the agents every `rule.silence / 4` (at most every 30 s, at least every 100 ms) and
/// logs each change, until `shutdown` turns true.
pub async fn watch_agents(
    state: SharedState,
    rule: SilenceRule,
    mut shutdown: watch::Receiver<bool>,
) {
    let period = (rule.silence / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
    let mut tick = tokio::time::interval(period);
    let mut watch = SilenceWatch::default();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => break,
        }
        let now = Timestamp::now();
        let state = state.read().await;
        for change in watch.check(&state.agents, &rule, now) {
            match change {
                Transition::TurnedSilent(agent) => {
                    let info = state.agents.get(&agent);
                    let last = info.and_then(SilenceRule::last_activity);
                    let status = info
                        .and_then(|i| i.status.as_ref())
                        .map(|s| s.state.as_str())
                        .unwrap_or("unknown");
                    tracing::warn!(%agent, last_activity = ?last.map(Timestamp::to_rfc3339),
                        status, silence = ?rule.silence, "agent silent");
                }
                Transition::CameBack(agent) => tracing::info!(%agent, "agent heard from again"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: Timestamp = Timestamp(1_000_000);
    const MIN: Duration = Duration::from_secs(60);

    fn rule() -> SilenceRule {
        SilenceRule {
            silence: 5 * MIN,
            started: START,
        }
    }

    fn agent(last_seen: Option<Timestamp>, status_at: Option<Timestamp>) -> AgentInfo {
        AgentInfo {
            last_seen,
            status_at,
            ..AgentInfo::default()
        }
    }

    #[test]
    fn silent_after_the_threshold_since_the_last_batch_or_status() {
        let r = rule();
        let a = agent(Some(START.plus(MIN)), Some(START.plus(3 * MIN)));
        assert!(!r.is_silent(&a, START.plus(8 * MIN)), "status 5 min ago");
        assert!(r.is_silent(&a, START.plus(8 * MIN).plus(Duration::from_millis(1))));
        let unheard = agent(None, None);
        assert!(
            !r.is_silent(&unheard, START.plus(5 * MIN)),
            "counts from start"
        );
        assert!(r.is_silent(&unheard, START.plus(6 * MIN)));
    }

    #[test]
    fn views_filter_by_silence() {
        let mut agents = BTreeMap::new();
        agents.insert("live".to_string(), agent(Some(START.plus(9 * MIN)), None));
        agents.insert("gone".to_string(), agent(Some(START), None));
        let now = START.plus(10 * MIN);
        let all = views(&agents, &rule(), now, None);
        assert_eq!(all.len(), 2);
        assert!(all["gone"].silent && !all["live"].silent);
        let silent: Vec<_> = views(&agents, &rule(), now, Some(true))
            .into_keys()
            .collect();
        assert_eq!(silent, ["gone"]);
        let live: Vec<_> = views(&agents, &rule(), now, Some(false))
            .into_keys()
            .collect();
        assert_eq!(live, ["live"]);
    }

    #[test]
    fn watch_reports_each_change_once() {
        let mut agents = BTreeMap::new();
        agents.insert("a1".to_string(), agent(Some(START), None));
        let mut w = SilenceWatch::default();
        assert!(w.check(&agents, &rule(), START.plus(MIN)).is_empty());
        let t = START.plus(7 * MIN);
        assert_eq!(
            w.check(&agents, &rule(), t),
            [Transition::TurnedSilent("a1".into())]
        );
        assert!(w.check(&agents, &rule(), t.plus(MIN)).is_empty());
        agents.get_mut("a1").unwrap().status_at = Some(t.plus(MIN));
        assert_eq!(
            w.check(&agents, &rule(), t.plus(MIN)),
            [Transition::CameBack("a1".into())]
        );
    }
}
