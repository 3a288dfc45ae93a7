//! The running collector: store, rebuilt state, MQTT ingest loop and HTTP API.

use crate::analysis::Analysis;
use crate::incidents::IncidentRules;
use crate::ingest;
use crate::problems::ProblemRules;
use crate::state::{CollectorState, SharedState, SummaryIndex};
use crate::store::CollectorStore;
use anyhow::Context as _;
use coldaisle_config::CollectorConfig;
use coldaisle_core::wire::Topics;
use coldaisle_core::Timestamp;
use coldaisle_mqtt::{LinkEvent, LinkOptions, MqttLink, Qos};
use coldaisle_store::KvStore;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{watch, RwLock};
use tokio::task::JoinSet;

/// A started collector.
#[derive(Debug)]
pub struct RunningCollector {
    /// Shared state (read it for reports).
    pub state: SharedState,
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// Tasks in `tasks` at start (a health check fails when fewer are left).
    started_tasks: usize,
    /// The notifier and the rule rebuild of a reload.
    rules: crate::rules_reload::RuleSwitch,
    /// Ingest limits and the agents list (replaced on reload).
    gate: ingest::SharedGate,
    /// Who may call the API (its tokens are re-read on SIGHUP).
    access: crate::auth::Access,
    /// The API's TLS, if configured (its files are re-read on SIGHUP).
    api_tls: Option<crate::api_tls::ApiTls>,
}

/// Builds the empty state with the configured rules.
pub fn empty_state(config: &CollectorConfig) -> CollectorState {
    let raw = &config.raw;
    CollectorState {
        analysis: Analysis::new(
            IncidentRules {
                quiet_period: raw.incidents.quiet_period,
                sustained_after: raw.problems.sla_sustained,
            },
            ProblemRules {
                min_incidents: raw.problems.min_incidents,
                window: raw.problems.window,
                sla_severity: raw.problems.sla_severity.severity(),
                scope: match raw.problems.scope {
                    coldaisle_config::collector::ProblemScopeConfig::Zone => {
                        crate::problems::ProblemScope::Zone
                    }
                    coldaisle_config::collector::ProblemScopeConfig::Site => {
                        crate::problems::ProblemScope::Site
                    }
                    coldaisle_config::collector::ProblemScopeConfig::Row => {
                        crate::problems::ProblemScope::Row
                    }
                },
            },
        ),
        summaries: SummaryIndex::default(),
        rollups: None,
        agents: Default::default(),
        stats: Default::default(),
        latest_event: Timestamp(0),
    }
}

impl RunningCollector {
    /// Opens the store, rebuilds incidents and problems from it, binds the HTTP API and
    /// starts ingest. Returns once the API is listening.
    pub async fn start(config: CollectorConfig) -> anyhow::Result<RunningCollector> {
        let raw = &config.raw;
        let kv: Arc<dyn KvStore> = crate::store_backend::open(&config)?;
        let action_log = crate::action_log::ActionLog::new(kv.clone());
        let notify_kv = kv.clone();
        let silences =
            crate::notifier::SilenceBook::open(kv.clone()).context("reading silences")?;
        let gate = Arc::new(std::sync::RwLock::new(Arc::new(ingest_gate(&config)?)));
        let sites = crate::identity::SiteBook::new(kv.clone());
        let store = CollectorStore::new(kv.clone());
        let policy = crate::retention::RetentionPolicy::from_config(&raw.retention);
        let rollups = crate::rollup_store::RollupStore::new(kv.clone(), policy);
        let mut state = empty_state(&config);
        state.rollups = Some(rollups);
        let mut records = 0u64;
        // One replay per scope after everything is read, not one per record out of event order.
        state.analysis.begin_bulk();
        let bad = store
            .for_each_record(|r| {
                records += 1;
                state.agents.entry(r.agent.clone()).or_default().records += 1;
                ingest::apply_record(&mut state, r);
            })
            .context("reading stored records")?;
        let actions = action_log.all().context("reading operator actions")?;
        state.analysis.ingest_actions(actions);
        let unmatched = state.analysis.end_bulk();
        if unmatched > 0 {
            tracing::warn!(
                unmatched,
                "stored operator actions match nothing at their time"
            );
        }
        for (agent, ledger) in store.ledgers().context("reading agent ledgers")? {
            let info = state.agents.entry(agent).or_default();
            info.site = ledger.site.clone();
            info.acked_upto = ledger.acked_upto;
            info.highest_seen = ledger.highest_seen;
            info.dropped_by_agent = ledger.dropped_by_agent;
            info.trust.restore(&ledger);
        }
        tracing::info!(
            records,
            undecodable = bad,
            incidents = state.analysis.incidents(state.latest_event).len(),
            problems = state.analysis.problems().len(),
            "state rebuilt from the store"
        );
        let state: SharedState = Arc::new(RwLock::new(state));

        let access = crate::auth::Access::load(raw.http.tokens_file.as_deref())?;
        match &access {
            crate::auth::Access::Open => tracing::warn!(listen = %raw.http.listen,
                "the HTTP API has no tokens (http.tokens_file): anyone on this host can read and act; \
                 it listens on loopback only"),
            crate::auth::Access::Tokens { path, book } => tracing::info!(
                tokens_file = %path.display(),
                tokens = book.read().map(|b| b.len()).unwrap_or(0),
                "HTTP API requires bearer tokens"
            ),
        }
        let api_tls = match &raw.http.tls {
            Some(t) => Some(crate::api_tls::ApiTls::load(&t.cert_file, &t.key_file)?),
            None => None,
        };
        let served_tls = api_tls.clone();
        let api_access = access.clone();
        let max_body_bytes = raw.http.max_body_bytes;
        let report = crate::report::facility::ReportSettings::from_config(&raw.report);
        let listener = tokio::net::TcpListener::bind(raw.http.listen)
            .await
            .with_context(|| format!("binding the HTTP API on {}", raw.http.listen))?;
        let http_addr = listener.local_addr().context("reading the HTTP address")?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let silence = crate::silence::SilenceRule {
            silence: raw.agent_silence,
            started: Timestamp::now(),
        };
        tasks.spawn(crate::retention::run(
            kv,
            policy,
            raw.retention.compact_every,
            shutdown_rx.clone(),
        ));
        tasks.spawn(crate::silence::watch_agents(
            state.clone(),
            silence,
            shutdown_rx.clone(),
        ));
        let rules = crate::rules_reload::RuleSwitch::start(
            &config,
            notify_kv,
            state.clone(),
            silences.clone(),
        )?;
        {
            let state = state.clone();
            let mut rx = shutdown_rx.clone();
            tasks.spawn(async move {
                let stop = async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                let app = crate::http::router(crate::http::ApiOptions {
                    state,
                    clock: Arc::new(Timestamp::now),
                    silence,
                    operator: Some(crate::http::OperatorStores {
                        log: action_log,
                        silences,
                    }),
                    access,
                    max_body_bytes,
                    report,
                });
                if let Err(e) = crate::http::serve_api(listener, served_tls, app, stop).await {
                    tracing::error!(error = %e, "HTTP API failed");
                }
            });
        }
        let link = MqttLink::open(LinkOptions {
            client_id: format!("coldaisle-collector-{}", raw.collector_id),
            config: raw.mqtt.clone(),
            password: config.mqtt_password.clone(),
            tls: config.mqtt_tls.clone(),
            will: None,
        });
        tasks.spawn(run_ingest(
            Topics::new(&raw.mqtt.topic_prefix),
            raw.sites.clone(),
            link,
            ingest::Intake {
                store,
                sites,
                gate: gate.clone(),
            },
            state.clone(),
            shutdown_rx,
        ));
        tracing::info!(http = %http_addr, tls = raw.http.tls.is_some(), "collector started");
        Ok(RunningCollector {
            state,
            http_addr,
            shutdown,
            started_tasks: tasks.len(),
            tasks,
            rules,
            gate,
            access: api_access,
            api_tls,
        })
    }

    /// Re-reads the API tokens file (SIGHUP); on an error the tokens in force stay.
    pub fn reload_tokens(&self) -> anyhow::Result<usize> {
        Ok(self.access.reload()?)
    }

    /// Re-reads the API's TLS certificate and key (SIGHUP); `false` without TLS. On an error
    /// the certificate in force stays.
    pub fn reload_api_tls(&self) -> anyhow::Result<bool> {
        match &self.api_tls {
            Some(tls) => tls.reload().map(|()| true),
            None => Ok(false),
        }
    }

    /// `Ok` while ingest, the API and the notifier run and the state answers.
    pub async fn health(&mut self) -> anyhow::Result<()> {
        // A task ends only at shutdown: one that ended keeps the health check failing, so
        // the watchdog stops and systemd restarts the daemon.
        if self.tasks.try_join_next().is_some() || self.tasks.len() < self.started_tasks {
            anyhow::bail!("a collector task ended unexpectedly");
        }
        self.rules.health()?;
        let _ = self.state.read().await;
        Ok(())
    }

    /// Applies the changed incident, problem and notify rules of a reloaded config
    /// ([`crate::rules_reload`]); returns the sections applied. On an error the old rules stay.
    pub async fn apply_rules(
        &mut self,
        old: &CollectorConfig,
        new: &CollectorConfig,
    ) -> anyhow::Result<Vec<&'static str>> {
        // The agents file may change without the config: always re-read it.
        let gate = ingest_gate(new)?;
        let mut applied = self.rules.apply(old, new).await?;
        if ingest::replace(&self.gate, gate) {
            applied.push("ingest and agents");
        }
        Ok(applied)
    }

    /// Stops ingest and the API and waits for them.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        self.rules.stop_notifier().await;
        while self.tasks.join_next().await.is_some() {}
        tracing::info!("collector stopped");
    }
}

/// The ingest limits and agents list of `config` (reads the `agents_file`).
fn ingest_gate(config: &CollectorConfig) -> anyhow::Result<ingest::Gate> {
    let directory =
        crate::identity::AgentDirectory::from_config(config).context("loading the agents list")?;
    match directory.entries() {
        Some(list) => tracing::info!(agents = list.count(), "agents list in force"),
        None => tracing::info!("no agents list: each agent's first site is recorded and enforced"),
    }
    Ok(ingest::Gate {
        limits: config.raw.ingest.clone(),
        directory,
    })
}

async fn run_ingest(
    topics: Topics,
    sites: Vec<String>,
    mut link: MqttLink,
    intake: ingest::Intake,
    state: SharedState,
    mut shutdown: watch::Receiver<bool>,
) {
    let site_filters: Vec<Option<&str>> = if sites.is_empty() {
        vec![None]
    } else {
        sites.iter().map(|s| Some(s.as_str())).collect()
    };
    // Agents told "collector here" (a hello ack) since this connection was made.
    let mut greeted: std::collections::HashSet<String> = std::collections::HashSet::new();
    loop {
        let event = tokio::select! {
            e = link.events.recv() => e,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let Some(event) = event else { break };
        match event {
            LinkEvent::Connected => {
                greeted.clear();
                for site in &site_filters {
                    for filter in [topics.events_filter(*site), topics.status_filter(*site)] {
                        if let Err(e) = link
                            .client
                            .subscribe(filter.clone(), Qos::AtLeastOnce)
                            .await
                        {
                            tracing::warn!(%filter, error = %e, "subscribe failed");
                        }
                    }
                }
            }
            LinkEvent::Disconnected(_) => {}
            LinkEvent::Message { topic, payload } => {
                if topic.ends_with("/status") {
                    let mut s = state.write().await;
                    if let Err(e) =
                        ingest::apply_status(&mut s, &topics, &topic, &payload, Timestamp::now())
                    {
                        s.stats.malformed += 1;
                        tracing::warn!(%topic, error = %e, "status message rejected");
                        continue;
                    }
                    // The first status of an agent on this connection (the retained one right
                    // after subscribing): tell the agent we are here, so it resends now.
                    let hello = topics
                        .parse(&topic)
                        .filter(|(_, agent, _)| !greeted.contains(*agent))
                        .map(|(site, agent, _)| {
                            let (ack_topic, ack) = ingest::hello_message(&topics, &s, site, agent);
                            (agent.to_string(), ack_topic, ack)
                        });
                    drop(s);
                    if let Some((agent, ack_topic, ack)) = hello {
                        match link
                            .client
                            .publish(ack_topic, Qos::AtLeastOnce, false, ack)
                            .await
                        {
                            Ok(()) => {
                                tracing::debug!(%agent, "hello ack sent");
                                greeted.insert(agent);
                            }
                            Err(e) => {
                                tracing::warn!(%agent, error = %e, "hello ack publish failed")
                            }
                        }
                    }
                    continue;
                }
                let gate = ingest::current(&intake.gate);
                let checked = match ingest::check_batch(&topics, &gate.limits, &topic, &payload) {
                    Ok(c) => c,
                    Err(e) => {
                        ingest::reject(&mut *state.write().await, &topic, &e, Timestamp::now());
                        continue;
                    }
                };
                let (agent, site) = (checked.agent.clone(), checked.site.clone());
                let (store, book) = (intake.store.clone(), intake.sites.clone());
                let stored = tokio::task::spawn_blocking(move || {
                    ingest::store(&store, &book, &gate, checked, Timestamp::now())
                })
                .await;
                let stored = match stored {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        ingest::reject(&mut *state.write().await, &topic, &e, Timestamp::now());
                        continue;
                    }
                    Err(e) => {
                        tracing::error!(%agent, error = %e, "store task failed; not acked");
                        continue;
                    }
                };
                let (ack_topic, ack) =
                    ingest::ack_message(&topics, &site, &agent, stored.ledger.acked_upto);
                if let Err(e) = link
                    .client
                    .publish(ack_topic, Qos::AtLeastOnce, false, ack)
                    .await
                {
                    tracing::warn!(%agent, error = %e, "ack publish failed; the agent will resend");
                }
                tracing::debug!(%agent, new = stored.new.len(), duplicates = stored.duplicates,
                    acked_upto = stored.ledger.acked_upto, "batch stored");
                let mut s = state.write().await;
                // A batch is applied in bulk: each scope its records reach replays at most once
                // (a backlog interleaved across agents is mostly late records).
                s.analysis.begin_bulk();
                ingest::apply(&mut s, &agent, &stored, Timestamp::now());
                s.analysis.end_bulk();
            }
        }
    }
    link.close().await;
}
