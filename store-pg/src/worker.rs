//! The OS thread that owns the connection and runs every operation on it.
//!
//! Why a thread of its own (and not `block_in_place` or a client shared with the caller's
//! runtime): [`coldaisle_store::KvStore`] is synchronous and is called from everywhere in the
//! collector: from `spawn_blocking` tasks (ingest), from async functions on runtime threads
//! (start-up, API handlers), and from plain threads and `#[tokio::test]`s on a current-thread
//! runtime. `block_in_place` panics on a current-thread runtime and `Runtime::block_on`
//! panics inside any runtime; a client driven by the caller's runtime deadlocks when the
//! caller blocks the only thread that would drive it. A dedicated thread with its own
//! current-thread runtime works from all of them: the caller blocks on a channel, exactly as
//! it blocks on sled's I/O. The price is that operations are serialised on one connection,
//! which is what the collector's single ingest loop does anyway.

use crate::backoff::Backoff;
use crate::conn::Conn;
use crate::ops::{self, Op, OpError, Reply};
use crate::schema;
use crate::tls::MakeRustls;
use coldaisle_store::StoreError;
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;

/// How long one operation may take before the connection is given up (and rebuilt on the
/// next call).
pub(crate) const OP_TIMEOUT: Duration = Duration::from_secs(30);

/// One operation and where to send its result.
pub(crate) struct Request {
    pub op: Op,
    pub reply: SyncSender<Result<Reply, StoreError>>,
}

/// The connection's owner (lives on the worker thread).
pub(crate) struct Worker {
    config: tokio_postgres::Config,
    /// TLS connector (`ca_file` given), else plain connections.
    tls: Option<MakeRustls>,
    /// The URL without password, for errors and logs.
    target: String,
    runtime: tokio::runtime::Runtime,
    client: Option<Conn>,
    backoff: Backoff,
    /// Why the last connection attempt failed.
    last_error: String,
}

impl Worker {
    /// A worker that has not connected yet.
    pub fn new(
        config: tokio_postgres::Config,
        tls: Option<MakeRustls>,
        target: String,
    ) -> std::io::Result<Worker> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Worker {
            config,
            tls,
            target,
            runtime,
            client: None,
            backoff: Backoff::default(),
            last_error: String::new(),
        })
    }

    /// Connects (and migrates) now, ignoring the backoff: the first connection at open.
    pub fn connect_now(&mut self) -> Result<(), String> {
        self.backoff = Backoff::default();
        self.reconnect()
    }

    /// Serves requests until every sender is gone.
    pub fn serve(mut self, requests: Receiver<Request>) {
        while let Ok(Request { op, reply }) = requests.recv() {
            let result = self.handle(op);
            // The caller may have given up (panicked); nothing to do then.
            let _ = reply.send(result);
        }
        tracing::debug!(database = %self.target, "postgres store closed");
    }

    fn handle(&mut self, op: Op) -> Result<Reply, StoreError> {
        let operation = op.name();
        let tree = op.tree().to_string();
        let fail = |message: String| StoreError {
            operation,
            tree: tree.clone(),
            message,
        };
        if self.client.is_none() {
            self.reconnect().map_err(fail)?;
        }
        let Worker {
            runtime,
            client: slot,
            target,
            ..
        } = self;
        let Some(client) = slot.as_mut() else {
            return Err(fail(format!("not connected to {target}")));
        };
        // The timer must be created inside the runtime: hence the async block.
        let outcome = runtime
            .block_on(async { tokio::time::timeout(OP_TIMEOUT, ops::run(client, op)).await });
        match outcome {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(OpError::Invalid(message))) => Err(fail(message)),
            Ok(Err(OpError::Db(e))) => {
                if client.is_closed() {
                    tracing::warn!(database = %target, error = %e, "postgres connection lost");
                    *slot = None;
                }
                Err(fail(format!("{e} (database {target})")))
            }
            Err(_) => {
                tracing::warn!(database = %target, "postgres did not answer; dropping the connection");
                *slot = None;
                Err(fail(format!(
                    "no answer from {target} within {OP_TIMEOUT:?}"
                )))
            }
        }
    }

    /// Connects unless the backoff says to wait; the error names the database.
    fn reconnect(&mut self) -> Result<(), String> {
        if let Some(wait) = self.backoff.wait(Instant::now()) {
            return Err(format!(
                "not connected to {}: {} (next attempt in {} ms)",
                self.target,
                self.last_error,
                wait.as_millis()
            ));
        }
        match self
            .runtime
            .block_on(connect(&self.config, self.tls.clone()))
        {
            Ok((client, version)) => {
                tracing::info!(database = %self.target, schema_version = version, "connected to postgres");
                self.backoff.succeeded();
                self.client = Some(Conn::new(client));
                Ok(())
            }
            Err(e) => {
                self.backoff.failed(Instant::now());
                tracing::warn!(database = %self.target, error = %e, "cannot connect to postgres");
                self.last_error = e.clone();
                Err(format!("cannot connect to {}: {e}", self.target))
            }
        }
    }
}

/// Runs a connection's I/O on this runtime until it ends.
fn drive<C>(connection: C)
where
    C: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres connection ended");
        }
    });
}

/// Opens a connection, drives it on this runtime, applies pending migrations.
async fn connect(
    config: &tokio_postgres::Config,
    tls: Option<MakeRustls>,
) -> Result<(tokio_postgres::Client, i32), String> {
    let mut client = match tls {
        None => {
            let (client, connection) = config.connect(NoTls).await.map_err(|e| e.to_string())?;
            drive(connection);
            client
        }
        Some(tls) => {
            let (client, connection) = config.connect(tls).await.map_err(|e| e.to_string())?;
            drive(connection);
            client
        }
    };
    let version = schema::migrate(&mut client)
        .await
        .map_err(|e| format!("applying migrations: {e}"))?;
    if version > schema::latest() {
        return Err(format!(
            "the database schema is at version {version}, newer than this build knows ({}): \
             run a newer collector",
            schema::latest()
        ));
    }
    Ok((client, version))
}
