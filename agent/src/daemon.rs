//! The running agent: wires device tasks → pipeline → outbox → publisher, and shuts them down
//! in order (stop polling, store what was detected, let the publisher say `offline`).

use crate::outbox::Outbox;
use crate::pipeline::{is_raise, Pipeline};
use crate::poller::{run_device, PollOutcome};
use crate::publisher::{self, PublisherSettings, SharedOutbox};
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
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    outbox: SharedOutbox,
}

impl RunningAgent {
    /// Opens the store and starts every task. Returns once the agent is running (the broker
    /// may still be unreachable: the outbox keeps everything until it is).
    pub fn start(config: AgentConfig) -> anyhow::Result<RunningAgent> {
        let store_dir = config.state_dir.join("outbox");
        std::fs::create_dir_all(&store_dir)
            .with_context(|| format!("creating state directory {}", store_dir.display()))?;
        let store: Arc<dyn KvStore> = Arc::new(
            SledStore::open(&store_dir)
                .with_context(|| format!("opening the outbox in {}", store_dir.display()))?,
        );
        let outbox =
            Outbox::open(store, &config.agent_id, &config.site).context("recovering the outbox")?;
        tracing::info!(
            agent = %config.agent_id,
            site = %config.site,
            devices = config.devices.len(),
            next_seq = outbox.next_seq(),
            pending = outbox.pending_count(),
            "agent starting"
        );
        let outbox: SharedOutbox = Arc::new(Mutex::new(outbox));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();

        let (poll_tx, poll_rx) = mpsc::channel::<PollOutcome>(1024);
        for (index, device) in config.devices.iter().enumerate() {
            tasks.spawn(run_device(
                index,
                device.clone(),
                poll_tx.clone(),
                shutdown_rx.clone(),
            ));
        }
        drop(poll_tx);

        let appended = Arc::new(Notify::new());
        tasks.spawn(run_pipeline(
            Pipeline::new(&config),
            poll_rx,
            outbox.clone(),
            appended.clone(),
        ));

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
            will: Some((
                topics.status(&config.site, &config.agent_id),
                settings.status("offline"),
            )),
        });
        tasks.spawn(publisher::run(
            settings,
            link,
            outbox.clone(),
            appended,
            shutdown_rx,
        ));
        Ok(RunningAgent {
            shutdown,
            tasks,
            outbox,
        })
    }

    /// Records not yet acknowledged by the collector.
    pub fn pending(&self) -> u64 {
        self.outbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pending_count()
    }

    /// Stops polling, stores what is in flight, says `offline`, and waits for every task.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
        tracing::info!("agent stopped");
    }
}

/// Feeds poll outcomes through the pipeline and appends what it produces, one flush per burst
/// of outcomes (group commit). Ends when every device task has ended.
async fn run_pipeline(
    mut pipeline: Pipeline,
    mut outcomes: mpsc::Receiver<PollOutcome>,
    outbox: SharedOutbox,
    appended: Arc<Notify>,
) {
    while let Some(first) = outcomes.recv().await {
        let mut payloads = pipeline.observe(&first);
        while let Ok(more) = outcomes.try_recv() {
            payloads.extend(pipeline.observe(&more));
        }
        if payloads.is_empty() {
            continue;
        }
        for p in payloads.iter().filter(|p| is_raise(p)) {
            tracing::info!(payload = ?p, "raised");
        }
        let outbox = outbox.clone();
        let result = tokio::task::spawn_blocking(move || {
            outbox
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .append(payloads)
        })
        .await;
        match result {
            Ok(Ok(_)) => appended.notify_one(),
            Ok(Err(e)) => tracing::error!(error = %e, "appending to the outbox failed"),
            Err(e) => tracing::error!(error = %e, "outbox task failed"),
        }
    }
}
