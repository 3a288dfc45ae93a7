//! The agent's SNMP notification listener as a daemon task (`[snmp_traps]`): binds the UDP
//! socket, runs [`crate::snmp::trap::listen`], turns each mapped notification into a payload
//! ([`crate::snmp::trap_map`]) and appends it to the outbox, then wakes the publisher.
//!
//! Invariants: off unless `snmp_traps.listen` is set; a reload swaps devices, communities and
//! mappings in place (the socket stays bound; a new `listen` address needs a restart, see
//! `reload.rs`); [`TrapListener::stop`] ends its tasks before the daemon drains the outbox.
//! Source addresses: the IP-literal table is built at start and on reload (names that
//! resolved before keep their addresses); a third task resolves device host names at once,
//! after each reload and every [`REFRESH_EVERY`] ([`crate::snmp::trap_sources`]).

use crate::publisher::SharedOutbox;
use crate::snmp::trap::{listen, TrapContext, TrapEvent};
use crate::snmp::trap_sources::{resolve_sources, SourceTable, REFRESH_EVERY, RESOLVE_TIMEOUT};
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
    /// Wakes the source refresher (after a reload).
    resolve_now: Arc<Notify>,
    /// Resolves device host names into the context's source table.
    refresher: JoinHandle<()>,
}

fn context_of(config: &AgentConfig, previous: Option<&SourceTable>) -> Arc<TrapContext> {
    Arc::new(TrapContext {
        sources: SourceTable::build(&config.devices, &Default::default(), previous),
        devices: config.devices.clone(),
        communities: config.snmp_traps.communities.clone(),
        v3: crate::snmp::trap_v3::V3Settings::of(config),
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
        let (context, context_rx) = watch::channel(context_of(config, None));
        let (mappings, mappings_rx) = watch::channel(Arc::new(config.snmp_traps.clone()));
        let (tx, rx) = mpsc::channel(256);
        let listener = tokio::spawn(listen(socket, context_rx, tx, shutdown_rx));
        let resolve_now = Arc::new(Notify::new());
        let refresher = tokio::spawn(refresh_sources(
            context.clone(),
            resolve_now.clone(),
            shutdown.subscribe(),
        ));
        let appender = tokio::spawn(append_events(rx, mappings_rx, outbox, appended));
        Ok(Some(TrapListener {
            shutdown,
            context,
            mappings,
            listener,
            appender,
            resolve_now,
            refresher,
        }))
    }

    /// Applies a reloaded config's devices, communities and mappings.
    pub fn reload(&self, config: &AgentConfig) {
        let previous = self.context.borrow().sources.clone();
        self.context
            .send_replace(context_of(config, Some(&previous)));
        self.resolve_now.notify_one();
        self.mappings
            .send_replace(Arc::new(config.snmp_traps.clone()));
    }

    /// Stops listening and waits until every received notification is in the outbox.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        if let Err(e) = self.refresher.await {
            tracing::error!(error = %e, "SNMP notification source refresher failed");
        }
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
                // The outbox holds it; the pipeline's next write or retry stores it.
                tracing::error!(device = %event.device, trap_oid = %oid, error = %e, "appending a notification to the outbox failed; held for a retry")
            }
            Err(e) => tracing::error!(error = %e, "outbox task failed"),
        }
    }
}

/// Resolves the context's device host names now, after each reload (`resolve_now`) and every
/// [`REFRESH_EVERY`], and puts the new table into the context unless the devices changed
/// meanwhile (then it resolves again at once).
async fn refresh_sources(
    context: watch::Sender<Arc<TrapContext>>,
    resolve_now: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let current = context.borrow().clone();
        let table = tokio::select! {
            table = resolve_sources(&current.devices, Some(&current.sources), RESOLVE_TIMEOUT) => table,
            _ = shutdown.changed() => return,
        };
        let (addresses, unresolved) = (table.len(), table.unresolved().len());
        let changed = context.send_if_modified(|now| {
            if now.devices != current.devices || now.sources == table {
                return false;
            }
            *now = Arc::new(TrapContext {
                sources: table,
                ..(**now).clone()
            });
            true
        });
        if changed {
            tracing::info!(addresses, unresolved, "SNMP notification sources updated");
        }
        tokio::select! {
            _ = tokio::time::sleep(REFRESH_EVERY) => {}
            _ = resolve_now.notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn devices(id: &str, address: &str) -> Vec<coldaisle_config::Device> {
        let text = format!(
            "agent_id = \"t\"\nsite = \"lab\"\nstate_dir = \"/tmp/unused\"\n[mqtt]\nhost = \"h\"\n\
             [[devices]]\nid = \"{id}\"\nprotocol = \"snmp\"\naddress = \"{address}\"\nzone = \"Z1\"\n\
             [[devices.points]]\nsensor = \"{id}-t\"\nkind = \"inlet_temp\"\noid = \"1.3.6.1.2.1.1.3.0\"\n"
        );
        AgentConfig::from_str(&text, std::path::Path::new("t.toml"))
            .unwrap()
            .devices
    }

    fn context(devices: Vec<coldaisle_config::Device>) -> Arc<TrapContext> {
        Arc::new(TrapContext {
            sources: SourceTable::build(&devices, &Default::default(), None),
            devices,
            communities: vec!["public".into()],
            v3: Default::default(),
        })
    }

    #[tokio::test]
    async fn host_names_are_resolved_at_start_and_again_after_a_reload() {
        let loopback: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let (tx, mut rx) = watch::channel(context(devices("pdu-1", "localhost:161")));
        assert!(rx.borrow_and_update().device(loopback).is_none());
        let (stop, stopped) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(refresh_sources(tx.clone(), wake.clone(), stopped));
        tokio::time::timeout(Duration::from_secs(10), rx.changed())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            rx.borrow_and_update()
                .device(loopback)
                .map(|d| d.id.clone()),
            Some("pdu-1".to_string())
        );
        // A reload to another device on the same host name: resolved again at once.
        tx.send_replace(context(devices("pdu-2", "localhost:1161")));
        wake.notify_one();
        rx.borrow_and_update();
        tokio::time::timeout(Duration::from_secs(10), rx.changed())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            rx.borrow().device(loopback).map(|d| d.id.clone()),
            Some("pdu-2".to_string())
        );
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
}
