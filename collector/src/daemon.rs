//! The running collector: store, rebuilt state, MQTT ingest loop and HTTP API.

use crate::analysis::Analysis;
use crate::incidents::IncidentRules;
use crate::ingest;
use crate::problems::ProblemRules;
use crate::state::{CollectorState, SharedState};
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
                density_lookback: raw.problems.density_lookback,
                verification_window: raw.problems.verification_window,
            },
        )
        .with_signature_settings(crate::recurrence::SignatureSettings {
            utc_offset_minutes: raw.problems.utc_offset.minutes,
            ..Default::default()
        }),
        directory: Default::default(),
        rollups: None,
        agents: Default::default(),
        stats: Default::default(),
        notify: Default::default(),
        latest_event: Timestamp(0),
        history: None,
    }
}

/// The collector's state loaded from the store ([`crate::start_up`]): from the last
/// checkpoint and the records after it, or, without a usable one (and always in a cluster),
/// from every record streamed in event-time order ([`crate::stream_rebuild`]); then operator
/// actions and agent ledgers. Blocking (reads the store). Also says where the state stands
/// ([`crate::checkpoint::Loaded`]); the start-up report is in `state.stats.last_start`.
pub fn load_state(
    config: &CollectorConfig,
    kv: &Arc<dyn KvStore>,
) -> anyhow::Result<(CollectorState, crate::checkpoint::Loaded)> {
    load_state_since(config, kv, std::time::Instant::now())
}

/// [`load_state`] for a start-up that began at `began` (the report's `total_ms`).
fn load_state_since(
    config: &CollectorConfig,
    kv: &Arc<dyn KvStore>,
    began: std::time::Instant,
) -> anyhow::Result<(CollectorState, crate::checkpoint::Loaded)> {
    let store = CollectorStore::new(kv.clone());
    // Once per store (an older store's trees have no size counts yet): a scan, before ingest.
    crate::tree_sizes::ensure_counted(kv.as_ref()).context("counting the store's trees")?;
    backfill_scope_index(&store).context("indexing stored records by scope")?;
    let action_log = crate::action_log::ActionLog::new(kv.clone());
    let policy = crate::retention::RetentionPolicy::from_config(&config.raw.retention);
    let mut state = empty_state(config);
    state.rollups = Some(crate::rollup_store::RollupStore::new(kv.clone(), policy));
    state.history = Some(crate::state::StoredHistory(Arc::new(store.clone())));
    if config.raw.cluster.is_none() {
        // Event bodies of the last day in memory, older ones read from the scope index. Not
        // in a cluster: records followed from other partitions are not in this store's index.
        state
            .analysis
            .set_hot_span(Some(crate::analysis::hot::DEFAULT_HOT_SPAN));
    }
    let actions = action_log.all().context("reading operator actions")?;
    let clustered = config.raw.cluster.is_some();
    let report = crate::start_up::load(&mut state, &store, actions, clustered, began)
        .context("reading stored records")?;
    for (agent, ledger) in store.ledgers().context("reading agent ledgers")? {
        crate::cluster::follow::restore_ledger(state.agents.entry(agent).or_default(), &ledger);
    }
    let loaded = crate::checkpoint::Loaded {
        checkpoint: report.checkpoint,
        position: report.position,
        replayed: report.records,
        undecodable: report.undecodable,
        // `start_up::load` completes the directory whichever way it loaded.
        directory: true,
    };
    state.stats.last_start = Some(report);
    Ok((state, loaded))
}

/// Indexes by scope the records of a store written before the scope index
/// ([`CollectorStore::scope_index_missing`]), once, at start-up before anything reads the
/// index; logs how many entries it wrote and how long it took. Returns the entries written
/// (0 when the index was there). Blocking (scans every record).
pub fn backfill_scope_index(store: &CollectorStore) -> Result<u64, coldaisle_store::StoreError> {
    if !store.scope_index_missing()? {
        store.mark_scope_index_complete()?;
        return Ok(0);
    }
    let started = std::time::Instant::now();
    let entries = store.index_unindexed_scopes()?;
    store.mark_scope_index_complete()?;
    tracing::info!(
        entries,
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "records stored before the scope index indexed by scope"
    );
    Ok(entries)
}

impl RunningCollector {
    /// Opens the store, rebuilds incidents and problems from it, binds the HTTP API and
    /// starts ingest. Returns once the API is listening.
    pub async fn start(config: CollectorConfig) -> anyhow::Result<RunningCollector> {
        let began = std::time::Instant::now();
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
        // A clustered collector learns its role before it reads the store: an active one then
        // needs no second rebuild.
        let (cluster, active_rx) = match &raw.cluster {
            Some(c) => {
                let options = crate::cluster::pg_options(&config)?;
                let mut lease =
                    coldaisle_store_pg::PgLease::connect(&options, &c.lease, &raw.collector_id)
                        .await
                        .context("opening the lease session")?;
                let held = lease.try_acquire().await.context("trying the lease")?;
                let mut view = crate::cluster::initial_view(&config, c);
                view.holder = lease.holder().await.context("reading the lease holder")?;
                tracing::info!(lease = %c.lease, active = held, holder = ?view.holder, "cluster lease tried");
                let status = Arc::new(std::sync::RwLock::new(view));
                let (active, active_rx) = watch::channel(false);
                (
                    Some((c.clone(), lease, held, status, active)),
                    Some(active_rx),
                )
            }
            None => (None, None),
        };
        let loader = (config.clone(), kv.clone());
        let (state, loaded) =
            tokio::task::spawn_blocking(move || load_state_since(&loader.0, &loader.1, began))
                .await
                .context("the state rebuild task failed")??;
        let checkpoints = if raw.cluster.is_some() {
            crate::checkpoint::Schedule::never()
        } else {
            crate::checkpoint::Schedule::new(
                raw.retention.checkpoint_records,
                raw.retention.checkpoint_every,
                loaded.checkpoint,
                std::time::Instant::now(),
            )
        };
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
        let metrics_open_on_loopback = raw.http.metrics_open_on_loopback;
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
        let compaction = crate::retention::CompactionBook::default();
        {
            // Compaction writes: only the active collector of a cluster runs it.
            let (active, every) = (active_rx.clone(), raw.retention.compact_every);
            let compactor = crate::retention::Compactor {
                kv: kv.clone(),
                policy,
                records: Some(crate::retention::RecordRetention {
                    store: store.clone(),
                    keep: raw.retention.records,
                    state: state.clone(),
                }),
                book: compaction.clone(),
            };
            let mut stop = shutdown_rx.clone();
            tasks.spawn(async move {
                if crate::cluster::until_active(active, &mut stop).await {
                    crate::retention::run(compactor, every, stop).await;
                }
            });
        }
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
            active_rx,
        )?;
        let cluster_status = cluster.as_ref().map(|c| c.3.clone());
        {
            let state = state.clone();
            let silences = silences.clone();
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
                    metrics_open_on_loopback,
                    cluster: cluster_status,
                    report,
                    compaction,
                });
                if let Err(e) = crate::http::serve_api(listener, served_tls, app, stop).await {
                    tracing::error!(error = %e, "HTTP API failed");
                }
            });
        }
        let ingest = {
            let (config, state, shutdown) = (config.clone(), state.clone(), shutdown_rx.clone());
            let intake = ingest::Intake {
                store,
                sites,
                gate: gate.clone(),
            };
            move || {
                let raw = &config.raw;
                let link = MqttLink::open(LinkOptions {
                    client_id: format!("coldaisle-collector-{}", raw.collector_id),
                    config: raw.mqtt.clone(),
                    password: config.mqtt_password.clone(),
                    tls: config.mqtt_tls.clone(),
                    will: None,
                });
                run_ingest(
                    Topics::new(&raw.mqtt.topic_prefix),
                    raw.sites.clone(),
                    link,
                    intake,
                    state,
                    shutdown,
                    (checkpoints, loaded.position),
                )
            }
        };
        match cluster {
            // Ingest starts once the lease is held (at once if it is already).
            Some((cluster, lease, held, status, active)) => {
                let member = crate::cluster::Member {
                    config: config.clone(),
                    cluster,
                    lease,
                    kv,
                    state: state.clone(),
                    silences,
                    status,
                    active,
                };
                let work: crate::cluster::ActiveWork = Box::new(move || Box::pin(ingest()));
                tasks.spawn(member.run(held, work, shutdown_rx));
            }
            None => {
                tasks.spawn(ingest());
            }
        }
        tracing::info!(
            http = %http_addr,
            tls = raw.http.tls.is_some(),
            start_ms = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX),
            "collector started"
        );
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

/// Writes a checkpoint covering `position` (logged on failure; the next one is due at once).
async fn checkpoint(
    state: &SharedState,
    store: &CollectorStore,
    position: u64,
    schedule: &mut crate::checkpoint::Schedule,
) {
    match crate::checkpoint::take(state, store.kv().clone(), position).await {
        Ok(_) => schedule.written(position, std::time::Instant::now()),
        Err(e) => tracing::error!(position, error = %e, "checkpoint failed"),
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

/// Most records applied in one bulk while MQTT batches keep waiting (a draining backlog):
/// bounds how long the API and the notifier see the analysis as of before the bulk.
const COALESCE_RECORDS: usize = 20_000;

async fn run_ingest(
    topics: Topics,
    sites: Vec<String>,
    mut link: MqttLink,
    intake: ingest::Intake,
    state: SharedState,
    mut shutdown: watch::Receiver<bool>,
    // When to checkpoint, and the store position of the last record applied: everything up to
    // it is in the state.
    (mut checkpoints, mut position): (crate::checkpoint::Schedule, u64),
) {
    let site_filters: Vec<Option<&str>> = if sites.is_empty() {
        vec![None]
    } else {
        sites.iter().map(|s| Some(s.as_str())).collect()
    };
    // Agents told "collector here" (a hello ack) since this connection was made.
    let mut greeted: std::collections::HashSet<String> = std::collections::HashSet::new();
    // Records applied in the bulk still open (`None`: no bulk open, the analysis is current).
    let mut open_bulk: Option<usize> = None;
    loop {
        // Close the bulk once no message waits or it is large enough; then checkpoint if due.
        if open_bulk.is_some_and(|n| n >= COALESCE_RECORDS || link.events.is_empty()) {
            state.write().await.end_bulk();
            open_bulk = None;
            if checkpoints.due(position, std::time::Instant::now()) {
                checkpoint(&state, &intake.store, position, &mut checkpoints).await;
            }
        }
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
                // Only the owned sites are subscribed to; anything else (a broker that
                // forwards more) is counted and dropped, never stored or acked.
                let site = topics.parse(&topic).map(|(site, _, _)| site);
                if site.is_some_and(|site| !crate::cluster::owns(&sites, site)) {
                    let mut s = state.write().await;
                    *s.stats.refused.entry("site_not_owned").or_insert(0) += 1;
                    tracing::warn!(%topic, "message of a site this collector does not own; ignored");
                    continue;
                }
                if topic.ends_with("/status") {
                    let gate = ingest::current(&intake.gate);
                    let (book, status_topics, status_topic) =
                        (intake.sites.clone(), topics.clone(), topic.clone());
                    let checked = tokio::task::spawn_blocking(move || {
                        ingest::check_status(&status_topics, &book, &gate, &status_topic, &payload)
                    })
                    .await;
                    let mut s = state.write().await;
                    match checked {
                        Ok(Ok(checked)) => ingest::apply_status(&mut s, checked, Timestamp::now()),
                        Ok(Err(e)) => {
                            ingest::reject(&mut s, &topic, &e, Timestamp::now());
                            continue;
                        }
                        Err(e) => {
                            tracing::error!(%topic, error = %e, "status check task failed");
                            continue;
                        }
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
                // Batches are applied in bulk, and the batches already waiting behind this one
                // join the same bulk (closed at the top of the loop): each scope their records
                // reach replays at most once per bulk (a backlog interleaved across agents is
                // mostly late records).
                s.analysis.begin_bulk();
                ingest::apply(&mut s, &agent, &stored, Timestamp::now());
                drop(s);
                open_bulk = Some(open_bulk.unwrap_or(0) + stored.new.len());
                position = stored.position.unwrap_or(position);
            }
        }
    }
    if open_bulk.is_some() {
        state.write().await.end_bulk();
    }
    if checkpoints.behind(position) {
        checkpoint(&state, &intake.store, position, &mut checkpoints).await;
    }
    link.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::tests::{sensor, MIN, T0};
    use coldaisle_core::EventState::{Cleared, Raised};
    use coldaisle_core::Severity::Warning;
    use coldaisle_store::{MemoryStore, WriteBatch};

    fn config() -> CollectorConfig {
        let text =
            "collector_id = \"c1\"\nstate_dir = \"/tmp/unused\"\n[mqtt]\nhost = \"127.0.0.1\"\n";
        CollectorConfig::from_str(text, std::path::Path::new("collector.toml")).expect("config")
    }

    /// A store written before the scope index: records of two zones, then the index dropped.
    fn old_store() -> (Arc<dyn KvStore>, usize) {
        let kv: Arc<dyn KvStore> = Arc::new(MemoryStore::default());
        let store = CollectorStore::new(kv.clone());
        let mut n = 0;
        for k in 0..4_i64 {
            for (zone, seq) in [("Z1", 2 * k as u64 + 1), ("Z2", 2 * k as u64 + 2)] {
                let state = if k % 2 == 0 { Raised } else { Cleared };
                let e = sensor(
                    "a1",
                    seq,
                    zone,
                    "r1-inlet",
                    state,
                    Warning,
                    29.0,
                    T0 + k * MIN,
                );
                store
                    .store_batch("a1", "dc1", 1, &[], vec![e.into_record("dc1")])
                    .expect("store");
                n += 1;
            }
        }
        let mut drop = WriteBatch::default();
        for (key, _) in kv
            .scan(crate::store::SCOPES, b"", usize::MAX)
            .expect("scan")
        {
            drop.remove(key);
        }
        kv.apply(crate::store::SCOPES, drop)
            .expect("drop the index");
        (kv, n)
    }

    #[test]
    fn start_up_indexes_an_old_store_by_scope_once() {
        let (kv, records) = old_store();
        let store = CollectorStore::new(kv.clone());
        assert!(store.scope_index_missing().expect("check"));

        let (state, _) = load_state(&config(), &kv).expect("load");
        assert_eq!(state.analysis.event_count(), records);
        assert!(!store.scope_index_missing().expect("check"));
        let indexed = kv
            .scan(crate::store::SCOPES, b"", usize::MAX)
            .expect("scan")
            .len();
        assert_eq!(indexed, records);

        // The next start finds the index and writes nothing.
        assert_eq!(backfill_scope_index(&store).expect("backfill"), 0);
        // Even once the index is empty again (a store of summaries only looks like that),
        // the mark says the backfill is done: no rescan at every start.
        kv.apply(crate::store::SCOPES, {
            let mut batch = coldaisle_store::WriteBatch::default();
            for (key, _) in kv
                .scan(crate::store::SCOPES, b"", usize::MAX)
                .expect("scan")
            {
                batch.remove(key);
            }
            batch
        })
        .expect("empty the index");
        assert!(!store.scope_index_missing().expect("check"));
        let (again, _) = load_state(&config(), &kv).expect("load again");
        assert_eq!(again.analysis.event_count(), records);
    }
}
