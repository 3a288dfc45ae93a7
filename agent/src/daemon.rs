//! The running agent: wires device tasks → pipeline → outbox → publisher, and shuts them down
//! in order (stop polling, store what was detected, let the publisher say `offline`).

use crate::devices::{plan_reload, DeviceTasks, SlotMap};
use crate::outbox::Outbox;
use crate::pipeline::Pipeline;
use crate::poller::PollOutcome;
use crate::publisher::{self, PublisherSettings, SharedOutbox};
use crate::reload::RetainedConfig;
use crate::status::StatusReporter;
use anyhow::Context as _;
use coldaisle_config::AgentConfig;
use coldaisle_core::wire::Topics;
use coldaisle_mqtt::{LinkOptions, MqttLink};
use coldaisle_store::{KvStore, SledStore};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;

/// A started agent.
#[derive(Debug)]
pub struct RunningAgent {
    /// Stops the publisher (after the drain).
    shutdown: watch::Sender<bool>,
    /// Pipeline and publisher: they end only at shutdown.
    tasks: JoinSet<()>,
    outbox: SharedOutbox,
    /// One task per device, restarted one by one on reload.
    devices: DeviceTasks,
    /// New pipelines (and slot maps) for the pipeline task, on reload.
    swaps: mpsc::UnboundedSender<PipelineSwap>,
    /// The config in force (compared with the next one on reload), devices shared.
    config: RetainedConfig,
    /// Tasks in `tasks` at start (a health check fails when fewer are left).
    started_tasks: usize,
    /// The retained status: poll counts, config hash (replaced on reload).
    status: StatusReporter,
    /// The SNMP notification listener, when `[snmp_traps]` enables it (`traps.rs`).
    traps: Option<crate::traps::TrapListener>,
    /// Per-device poll figures (`/metrics`); a reload forgets removed devices.
    polls: crate::poll_metrics::PollMetrics,
}

/// A pipeline for a reloaded config, with the slot map of its device tasks.
#[derive(Debug)]
struct PipelineSwap {
    pipeline: Pipeline,
    slots: SlotMap,
}

impl RunningAgent {
    /// Opens the store and starts every task. Returns once the agent is running (the broker
    /// may still be unreachable: the outbox keeps everything until it is).
    pub fn start(config: AgentConfig) -> anyhow::Result<RunningAgent> {
        let store_dir = config.state_dir.join("outbox");
        std::fs::create_dir_all(&store_dir)
            .with_context(|| format!("creating state directory {}", store_dir.display()))?;
        let store: Arc<dyn KvStore> = Arc::new(
            SledStore::open_with(&store_dir, &crate::outbox::STORE_SETTINGS)
                .with_context(|| format!("opening the outbox in {}", store_dir.display()))?,
        );
        let outbox = Outbox::open(store.clone(), &config.agent_id, &config.site)
            .map(|o| o.with_quota(config.raw.outbox_max_bytes))
            .context("recovering the outbox")?;
        tracing::info!(
            agent = %config.agent_id,
            site = %config.site,
            devices = config.devices.len(),
            next_seq = outbox.next_seq(),
            pending = outbox.pending_count(),
            "agent starting"
        );
        let shared = crate::devices::share(&config.devices, &[]);
        let mut pipeline = Pipeline::with_devices(&config, &shared);
        let state = crate::detector_state::StateStore::new(&config.state_dir, store);
        state.restore_into(&mut pipeline);
        let outbox: SharedOutbox = Arc::new(Mutex::new(outbox));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();

        let (poll_tx, poll_rx) = mpsc::channel::<PollOutcome>(1024);
        let polls = crate::poll_metrics::PollMetrics::default();
        let mut devices = DeviceTasks::new(poll_tx, polls.clone());
        let slots = devices.start_all(&shared);
        let (swaps, swaps_rx) = mpsc::unbounded_channel();

        let appended = Arc::new(Notify::new());
        let status = StatusReporter::new(
            &config.config_hash,
            config.devices.len(),
            config.raw.status_every,
        );
        tasks.spawn(run_pipeline(
            PipelineSwap { pipeline, slots },
            state,
            poll_rx,
            swaps_rx,
            outbox.clone(),
            appended.clone(),
            status.clone(),
        ));

        if let Some(listen) = config.metrics_listen {
            let sources = crate::metrics_http::MetricsSources {
                status: status.clone(),
                polls: polls.clone(),
                outbox: outbox.clone(),
            };
            tasks.spawn(crate::metrics_http::start(
                listen,
                sources,
                shutdown_rx.clone(),
            )?);
        }
        let traps = crate::traps::TrapListener::start(&config, outbox.clone(), appended.clone())?;
        let topics = Topics::new(&config.mqtt.topic_prefix);
        let settings = PublisherSettings {
            agent: config.agent_id.clone(),
            site: config.site.clone(),
            topics: topics.clone(),
            resend_after: config.resend_after,
            config_hash: config.config_hash.clone(),
        };
        let link = MqttLink::open(LinkOptions {
            client_id: format!("coldaisle-agent-{}", config.agent_id),
            config: config.mqtt.clone(),
            password: config.mqtt_password.clone(),
            tls: config.mqtt_tls.clone(),
            will: Some((
                topics.status(&config.site, &config.agent_id),
                settings.status("offline"),
            )),
        });
        tasks.spawn(publisher::run_with_status(
            settings,
            status.clone(),
            link,
            outbox.clone(),
            appended,
            shutdown_rx,
        ));
        Ok(RunningAgent {
            shutdown,
            started_tasks: tasks.len(),
            tasks,
            outbox,
            devices,
            swaps,
            config: RetainedConfig::new(config, shared),
            status,
            traps,
            polls,
        })
    }

    /// Records not yet acknowledged by the collector.
    pub fn pending(&self) -> u64 {
        self.outbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pending_count()
    }

    /// Stops polling, stores what is in flight, says `offline`, and waits for every task
    /// (no wait for acks: [`RunningAgent::drain`] with a grace period does that).
    pub async fn shutdown(self) {
        self.drain(std::time::Duration::ZERO).await;
    }

    /// Graceful stop: stops polling, stores what the pipeline still holds, lets the publisher
    /// send the outbox and waits up to `grace` for the collector's acks, then says `offline`
    /// and waits for every task. What is not acked by then stays in the outbox for the next
    /// start (nothing is lost either way).
    pub async fn drain(mut self, grace: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        self.devices.stop_all().await;
        if let Some(traps) = self.traps.take() {
            traps.stop().await;
        }
        // The pipeline stores what it holds and ends with the outcome stream (every device
        // task stopped); the publisher keeps sending meanwhile.
        self.swaps.closed().await;
        let mut pending = self.pending();
        while pending > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            pending = self.pending();
        }
        if pending > 0 {
            tracing::warn!(pending, grace = ?grace, "grace period over; unacked records stay in the outbox");
        } else {
            tracing::info!("outbox drained: every record acknowledged");
        }
        let _ = self.shutdown.send(true);
        while let Some(r) = self.tasks.join_next().await {
            if let Err(e) = r {
                tracing::error!(error = %e, "agent task failed");
            }
        }
        tracing::info!(pending, "agent stopped");
    }

    /// Applies a new config without a restart: device tasks of added, removed and changed
    /// devices start and stop (the others keep polling), the pipeline is rebuilt for the new
    /// config with the detector state of every sensor it keeps. Settings that need a restart
    /// (agent id, site, state dir, broker, outbox) are reported and not applied. Returns a
    /// one-line summary.
    pub fn reload(&mut self, config: AgentConfig) -> anyhow::Result<String> {
        let restart_only = crate::reload::restart_only_changes(self.config.settings(), &config);
        for key in &restart_only {
            tracing::warn!(key = %key, "changed in the config but needs a restart; not applied");
        }
        let shared = crate::devices::share(&config.devices, self.config.devices());
        let plan = plan_reload(self.config.devices(), &shared);
        let pending = self.devices.prepare(&plan, &shared);
        let slots = self.devices.slots_with(&shared, &pending);
        self.swaps
            .send(PipelineSwap {
                pipeline: Pipeline::with_devices(&config, &shared),
                slots,
            })
            .map_err(|_| anyhow::anyhow!("the pipeline task has ended"))?;
        self.devices.start(pending);
        if let Some(traps) = &self.traps {
            traps.reload(&config);
        }
        for id in &plan.added {
            tracing::info!(device = %id, "device added");
        }
        for id in &plan.changed {
            tracing::info!(device = %id, "device changed; restarted");
        }
        for id in &plan.removed {
            tracing::info!(device = %id, "device removed");
        }
        self.status
            .config_changed(&config.config_hash, config.devices.len());
        self.polls
            .retain(|id| config.devices.iter().any(|d| d.id == id));
        self.config = RetainedConfig::new(config, shared);
        let mut summary = plan.summary();
        if !restart_only.is_empty() {
            summary.push_str(&format!("; needs restart: {}", restart_only.join(", ")));
        }
        Ok(summary)
    }

    /// `Ok` while the pipeline and the publisher run and the outbox answers.
    pub async fn health(&mut self) -> anyhow::Result<()> {
        // A task ends only at shutdown: one that ended keeps the health check failing, so
        // the watchdog stops and systemd restarts the daemon.
        if self.tasks.try_join_next().is_some() || self.tasks.len() < self.started_tasks {
            anyhow::bail!("an agent task ended unexpectedly");
        }
        if self.swaps.is_closed() {
            anyhow::bail!("the pipeline task has ended");
        }
        let outbox = self.outbox.clone();
        tokio::task::spawn_blocking(move || {
            outbox
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pending_count()
        })
        .await
        .context("reading the outbox")?;
        Ok(())
    }
}

/// Feeds poll outcomes through the pipeline and appends what it produces, one flush per burst
/// of outcomes (group commit); stores the detector state every minute and when every device
/// task has ended (shutdown), then ends.
async fn run_pipeline(
    current: PipelineSwap,
    mut state: crate::detector_state::StateStore,
    mut outcomes: mpsc::Receiver<PollOutcome>,
    mut swaps: mpsc::UnboundedReceiver<PipelineSwap>,
    outbox: SharedOutbox,
    appended: Arc<Notify>,
    status: StatusReporter,
) {
    let PipelineSwap {
        mut pipeline,
        mut slots,
    } = current;
    let mut saved_at = tokio::time::Instant::now();
    let mut swaps_open = true;
    // A write the disk refused is retried with backoff (the outbox holds the readings).
    let mut backoff = crate::outbox_retry::WriteBackoff::default();
    let mut retry_pending = false;
    loop {
        let first = tokio::select! {
            biased;
            swap = swaps.recv(), if swaps_open => {
                match swap {
                    Some(swap) => apply_swap(&mut pipeline, &mut slots, swap, &status),
                    None => swaps_open = false,
                }
                continue;
            }
            _ = tokio::time::sleep(backoff.delay()), if retry_pending => {
                retry_pending =
                    crate::outbox_retry::write(&outbox, None, &appended, &mut backoff).await;
                continue;
            }
            outcome = outcomes.recv() => match outcome {
                Some(o) => o,
                None => break,
            },
        };
        let mut payloads = Vec::new();
        let mut next = Some(first);
        while let Some(mut outcome) = next.take() {
            // A reload sent before this outcome's task started must be in force for it.
            while let Ok(swap) = swaps.try_recv() {
                apply_swap(&mut pipeline, &mut slots, swap, &status);
            }
            match slots.get(&outcome.device) {
                Some(&index) => {
                    status
                        .book()
                        .polls
                        .record(outcome.device, outcome.result.is_ok());
                    outcome.device = index;
                    payloads.extend(pipeline.observe(&outcome));
                }
                None => tracing::debug!(
                    slot = outcome.device,
                    "outcome of a stopped device task dropped"
                ),
            }
            next = outcomes.try_recv().ok();
        }
        if saved_at.elapsed() >= crate::detector_state::SAVE_EVERY {
            saved_at = tokio::time::Instant::now();
            state.save_logged(&pipeline);
        }
        if payloads.is_empty() {
            continue;
        }
        crate::pipeline::readable::log_transitions(&payloads);
        retry_pending =
            crate::outbox_retry::write(&outbox, Some(payloads), &appended, &mut backoff).await;
    }
    if retry_pending && crate::outbox_retry::write(&outbox, None, &appended, &mut backoff).await {
        tracing::error!("outbox writes still failing at shutdown: held readings are lost");
    }
    // Every device task has ended (shutdown): keep what the detectors know.
    state.save_logged(&pipeline);
}

/// Replaces the pipeline, carrying over the detector state of every sensor (and device
/// reachability) the new config keeps, by id.
fn apply_swap(
    pipeline: &mut Pipeline,
    slots: &mut SlotMap,
    swap: PipelineSwap,
    status: &StatusReporter,
) {
    let state = pipeline.export_state();
    let mut next = swap.pipeline;
    let restored = next.restore_state(&state);
    *pipeline = next;
    *slots = swap.slots;
    status
        .book()
        .polls
        .retain_slots(|slot| slots.contains_key(&slot));
    tracing::info!(
        restored,
        devices = slots.len(),
        "pipeline rebuilt for the new config"
    );
}
