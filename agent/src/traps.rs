//! The agent's SNMP notification listener as a daemon task (`[snmp_traps]`): binds the UDP
//! socket, runs [`crate::snmp::trap::listen`], turns each mapped notification into a payload
//! ([`crate::snmp::trap_map`]) and appends it to the outbox, then wakes the publisher.
//!
//! Invariants: off unless `snmp_traps.listen` is set; a reload swaps devices, communities and
//! mappings in place (the socket stays bound; a new `listen` address needs a restart, see
//! `reload.rs`); [`TrapListener::stop`] ends both tasks before the daemon drains the outbox.

use crate::publisher::SharedOutbox;
use crate::snmp::trap::{listen, TrapContext, TrapEvent};
use anyhow::Context as _;
use coldaisle_config::snmp_traps::SnmpTraps;
use coldaisle_config::AgentConfig;
use coldaisle_core::Timestamp;
use std::sync::{Arc, PoisonError};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

/// A running listener.
#[derive(Debug)]
pub struct TrapListener {
    shutdown: watch::Sender<bool>,
    context: watch::Sender<Arc<TrapContext>>,
    mappings: watch::Sender<Arc<SnmpTraps>>,
    listener: JoinHandle<()>,
    appender: JoinHandle<()>,
}

fn context_of(config: &AgentConfig) -> Arc<TrapContext> {
    Arc::new(TrapContext {
        devices: config.devices.clone(),
        communities: config.snmp_traps.communities.clone(),
    })
}

impl TrapListener {
    /// Binds `snmp_traps.listen` and starts the listener; `None` when the listener is off.
    /// Must run inside the runtime.
    pub fn start(
        config: &AgentConfig,
        outbox: SharedOutbox,
        appended: Arc<Notify>,
    ) -> anyhow::Result<Option<TrapListener>> {
        let Some(address) = config.snmp_traps.listen else {
            return Ok(None);
        };
        let socket = std::net::UdpSocket::bind(address)
            .with_context(|| format!("snmp_traps.listen: binding UDP {address}"))?;
        socket
            .set_nonblocking(true)
            .context("snmp_traps.listen: non-blocking socket")?;
        let socket = tokio::net::UdpSocket::from_std(socket)
            .with_context(|| format!("snmp_traps.listen: UDP {address}"))?;
        tracing::info!(%address, mappings = config.snmp_traps.mappings.len(), "SNMP notification listener started");
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (context, context_rx) = watch::channel(context_of(config));
        let (mappings, mappings_rx) = watch::channel(Arc::new(config.snmp_traps.clone()));
        let (tx, rx) = mpsc::channel(256);
        let listener = tokio::spawn(listen(socket, context_rx, tx, shutdown_rx));
        let appender = tokio::spawn(append_events(rx, mappings_rx, outbox, appended));
        Ok(Some(TrapListener {
            shutdown,
            context,
            mappings,
            listener,
            appender,
        }))
    }

    /// Applies a reloaded config's devices, communities and mappings.
    pub fn reload(&self, config: &AgentConfig) {
        self.context.send_replace(context_of(config));
        self.mappings
            .send_replace(Arc::new(config.snmp_traps.clone()));
    }

    /// Stops listening and waits until every received notification is in the outbox.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        if let Err(e) = self.listener.await {
            tracing::error!(error = %e, "SNMP notification listener failed");
        }
        // The listener dropped its sender: the appender ends after the last event.
        if let Err(e) = self.appender.await {
            tracing::error!(error = %e, "SNMP notification appender failed");
        }
    }
}

async fn append_events(
    mut events: mpsc::Receiver<TrapEvent>,
    mappings: watch::Receiver<Arc<SnmpTraps>>,
    outbox: SharedOutbox,
    appended: Arc<Notify>,
) {
    while let Some(event) = events.recv().await {
        let traps = mappings.borrow().clone();
        let oid = crate::snmp::value::format_oid(&event.notification.trap_oid);
        let Some(payload) = crate::snmp::trap_map::to_payload(&event, &traps, Timestamp::now())
        else {
            tracing::info!(device = %event.device, trap_oid = %oid, "SNMP notification without a mapping in [snmp_traps] ignored");
            continue;
        };
        tracing::info!(device = %event.device, trap_oid = %oid, payload = ?payload, "SNMP notification");
        let outbox = outbox.clone();
        let result = tokio::task::spawn_blocking(move || {
            outbox
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .append(vec![payload])
        })
        .await;
        match result {
            Ok(Ok(_)) => appended.notify_one(),
            Ok(Err(e)) => {
                tracing::error!(device = %event.device, trap_oid = %oid, error = %e, "appending a notification to the outbox failed")
            }
            Err(e) => tracing::error!(error = %e, "outbox task failed"),
        }
    }
}
