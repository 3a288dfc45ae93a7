//! Applies changed incident, problem and notify rules to a running collector (SIGHUP).
//!
//! - Notify: the notifier task is stopped and started again with the new receivers and routes
//!   (its progress is durable, so nothing is paged twice). When the new notifier cannot start
//!   (a secret file missing, a bad receiver), the old one is started again and the reload is
//!   rejected.
//! - Incidents and problems: the analysis is rebuilt with the new rules from the stored events
//!   and operator actions (the startup path), under the state's write lock so no batch applied
//!   meanwhile is missed (a batch stored during the rebuild and applied after it is seen
//!   twice; the analysis ignores the second by (agent, seq)).

use crate::analysis::Analysis;
use crate::notifier::SilenceBook;
use crate::state::SharedState;
use crate::store::CollectorStore;
use anyhow::Context as _;
use coldaisle_config::CollectorConfig;
use coldaisle_store::KvStore;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The notifier task and what rebuilding the analysis needs.
pub struct RuleSwitch {
    kv: Arc<dyn KvStore>,
    state: SharedState,
    silences: SilenceBook,
    notifier: JoinSet<()>,
    notifier_stop: watch::Sender<bool>,
    /// Tasks the notifier started with (zero when no route is configured).
    notifier_started: usize,
    /// In a cluster, true once this collector is active: the notifier waits for it.
    active: Option<watch::Receiver<bool>>,
}

impl std::fmt::Debug for RuleSwitch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSwitch")
            .field("notifier_tasks", &self.notifier.len())
            .finish_non_exhaustive()
    }
}

/// Which rule sections differ between two configs (compared as written).
pub fn changed_rules(old: &CollectorConfig, new: &CollectorConfig) -> (bool, bool) {
    let (o, n) = (&old.raw, &new.raw);
    let analysis = format!("{:?}{:?}", o.incidents, o.problems)
        != format!("{:?}{:?}", n.incidents, n.problems);
    let notify = format!("{:?}", o.notify) != format!("{:?}", n.notify);
    (analysis, notify)
}

/// The analysis of `config`'s rules rebuilt from the stored events and operator actions,
/// streamed in event-time order ([`crate::stream_rebuild`]: its memory follows the rules'
/// horizon, not the store).
pub fn rebuild_analysis(
    config: &CollectorConfig,
    kv: &Arc<dyn KvStore>,
) -> anyhow::Result<Analysis> {
    let mut state = crate::daemon::empty_state(config);
    let actions = crate::action_log::ActionLog::new(kv.clone())
        .all()
        .context("reading operator actions")?;
    crate::stream_rebuild::rebuild(&mut state, &CollectorStore::new(kv.clone()), actions)
        .context("reading stored records")?;
    Ok(state.analysis)
}

impl RuleSwitch {
    /// Starts the notifier of `config` (it pages once `active` is true; `None`: at once).
    pub fn start(
        config: &CollectorConfig,
        kv: Arc<dyn KvStore>,
        state: SharedState,
        silences: SilenceBook,
        active: Option<watch::Receiver<bool>>,
    ) -> anyhow::Result<RuleSwitch> {
        let (notifier_stop, stop_rx) = watch::channel(false);
        let mut notifier = JoinSet::new();
        crate::notifier::spawn(
            &mut notifier,
            config,
            kv.clone(),
            state.clone(),
            silences.clone(),
            stop_rx,
            active.clone(),
        )?;
        Ok(RuleSwitch {
            kv,
            state,
            silences,
            active,
            notifier_started: notifier.len(),
            notifier,
            notifier_stop,
        })
    }

    /// Applies the rule changes from `old` to `new`; returns the sections applied. On an
    /// error the old rules stay in force.
    pub async fn apply(
        &mut self,
        old: &CollectorConfig,
        new: &CollectorConfig,
    ) -> anyhow::Result<Vec<&'static str>> {
        let (analysis, notify) = changed_rules(old, new);
        let mut applied = Vec::new();
        if notify {
            self.stop_notifier().await;
            match RuleSwitch::start(
                new,
                self.kv.clone(),
                self.state.clone(),
                self.silences.clone(),
                self.active.clone(),
            ) {
                Ok(next) => self.adopt(next),
                Err(e) => {
                    let old_one = RuleSwitch::start(
                        old,
                        self.kv.clone(),
                        self.state.clone(),
                        self.silences.clone(),
                        self.active.clone(),
                    )
                    .context("restarting the previous notifier")?;
                    self.adopt(old_one);
                    return Err(e.context("new notify settings rejected; previous ones kept"));
                }
            }
            applied.push("notify");
        }
        if analysis {
            let mut state = self.state.write().await;
            let rebuilt = rebuild_analysis(new, &self.kv)?;
            tracing::info!(
                events = rebuilt.event_count(),
                problems = rebuilt.problems().len(),
                "analysis rebuilt with the new incident and problem rules"
            );
            // Rebuilt in one bulk (all in memory); the hot span trims it at the next input.
            state.analysis = rebuilt.with_hot_span(state.analysis.hot_span());
            applied.push("incidents/problems");
        }
        Ok(applied)
    }

    fn adopt(&mut self, next: RuleSwitch) {
        self.notifier = next.notifier;
        self.notifier_stop = next.notifier_stop;
        self.notifier_started = next.notifier_started;
    }

    /// `Ok` while every notifier task runs.
    pub fn health(&mut self) -> anyhow::Result<()> {
        if self.notifier.try_join_next().is_some() || self.notifier.len() < self.notifier_started {
            anyhow::bail!("the notifier ended unexpectedly");
        }
        Ok(())
    }

    /// Stops the notifier and waits for it.
    pub async fn stop_notifier(&mut self) {
        let _ = self.notifier_stop.send(true);
        while self.notifier.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::StoredEvent;
    use crate::report::tests::{inlet_event, location};
    use coldaisle_core::wire::Record;
    use coldaisle_core::{EventState, Severity};
    use coldaisle_store::MemoryStore;
    use std::path::Path;

    fn config(problems: &str) -> CollectorConfig {
        let text = format!(
            "collector_id = \"c1\"\nstate_dir = \"/tmp/unused\"\n[mqtt]\nhost = \"127.0.0.1\"\n[problems]\n{problems}\n"
        );
        CollectorConfig::from_str(&text, Path::new("collector.toml")).unwrap()
    }

    #[test]
    fn rebuild_applies_the_new_problem_rules_to_stored_events() {
        let kv: Arc<dyn KvStore> = Arc::new(MemoryStore::default());
        let hour = 3_600_000;
        let records: Vec<Record> = (0..2)
            .flat_map(|i| {
                let ts = 1_764_072_000_000 + i * hour;
                let loc = location("dc1", "Z1", Some("R2"));
                [
                    inlet_event(
                        0,
                        loc.clone(),
                        "r2-a",
                        EventState::Raised,
                        Severity::Warning,
                        ts,
                    ),
                    inlet_event(
                        0,
                        loc,
                        "r2-a",
                        EventState::Cleared,
                        Severity::Warning,
                        ts + 60_000,
                    ),
                ]
            })
            .enumerate()
            .map(|(i, e)| {
                StoredEvent {
                    seq: i as u64 + 1,
                    ..e
                }
                .into_record("dc1")
            })
            .collect();
        CollectorStore::new(kv.clone())
            .store_batch("a1", "dc1", 1, &[], records)
            .unwrap();
        let strict = config("min_incidents = 3\nsla_severity = \"none\"");
        let loose = config("min_incidents = 2\nsla_severity = \"none\"");
        assert_eq!(changed_rules(&strict, &loose), (true, false));
        assert_eq!(rebuild_analysis(&strict, &kv).unwrap().problems().len(), 0);
        let rebuilt = rebuild_analysis(&loose, &kv).unwrap();
        assert_eq!(rebuilt.event_count(), 4);
        assert_eq!(
            rebuilt.problems().len(),
            1,
            "two incidents of one fingerprint"
        );
    }
}
