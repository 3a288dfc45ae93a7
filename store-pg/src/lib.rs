//! The collector's [`KvStore`] on PostgreSQL, for fleets whose collectors share one database
//! that operators replicate and back up.
//!
//! - Tree [`RECORDS`] (key: agent id, `0x00`, seq big-endian) is table `records` with primary
//!   key `(agent, seq)`; every other tree shares table `kv (tree, key, value)`. See
//!   `migrations/` and [`schema`] for the versioned schema, applied at open.
//! - `apply` is one transaction (one `DELETE` and one multi-row `INSERT`), so a batch is all
//!   or nothing and **durable once it returns** (`COMMIT` with the server's default
//!   `synchronous_commit = on`); [`KvStore::flush`] therefore has nothing left to do.
//! - A database that is down or refuses us fails the call with a [`StoreError`] naming the
//!   URL without its password; the next call reconnects, with backoff (calls during a pause
//!   fail at once). Nothing here exits or panics: the collector does not ack what it could
//!   not store, and the agent resends.
//! - Operations run on a thread of their own ([`worker`] says why).
//! - Change reading ([`PgStore::settled_ingest_id`], [`PgStore::changes`], module `tail`):
//!   every row version carries an ingest id, so a collector refreshing its view reads only
//!   what was written since its last refresh.
//! - TLS (`PgOptions::ca_file`, module `tls`): rustls trusting only that CA; TLS is then
//!   required. Without it connections are plain TCP or a unix socket.

mod backoff;
mod changes;
mod conn;
mod lease;
mod ops;
mod records_key;
mod schema;
mod tail;
mod target;
mod tls;
mod worker;

pub use lease::{LeaseError, PgLease};
pub use ops::RECORDS;
pub use tail::{Change, ChangesPage, TailCursor, TailStep};
pub use target::redact;

use coldaisle_store::{Entry, KvStore, StoreError, WriteBatch};
use ops::{Op, Reply};
use std::sync::mpsc;
use std::time::Duration;
use worker::{Request, Worker};

/// Connection timeout when the URL sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how to connect.
#[derive(Clone)]
pub struct PgOptions {
    /// A libpq-style URL (`postgres://user@host:port/db`) or key/value string.
    pub url: String,
    /// The password, when not in the URL (read from the config's `password_file`).
    pub password: Option<String>,
    /// PEM CA certificates to verify the server with: TLS is required when set.
    pub ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &redact(&self.url))
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// A [`KvStore`] on a PostgreSQL database. Dropping it closes the connection.
#[derive(Debug)]
pub struct PgStore {
    /// Requests to the worker (dropped first on drop, which ends the worker).
    requests: Option<mpsc::Sender<Request>>,
    worker: Option<std::thread::JoinHandle<()>>,
    /// The URL without password.
    target: String,
}

impl PgStore {
    /// Connects, applies pending migrations and starts the worker thread. Fails (naming the
    /// URL without its password) if the database cannot be reached now.
    pub fn open(options: PgOptions) -> Result<PgStore, StoreError> {
        let target = redact(&options.url);
        let fail = |message: String| StoreError {
            operation: "open",
            tree: String::new(),
            message,
        };
        let (config, tls) = client_config(&options).map_err(fail)?;
        let mut worker = Worker::new(config, tls, target.clone())
            .map_err(|e| fail(format!("starting the store runtime: {e}")))?;
        let (requests, incoming) = mpsc::channel::<Request>();
        let (opened, opened_rx) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("coldaisle-store-pg".into())
            .spawn(move || {
                let first = worker.connect_now();
                let ok = first.is_ok();
                let _ = opened.send(first);
                if ok {
                    worker.serve(incoming);
                }
            })
            .map_err(|e| fail(format!("starting the store thread: {e}")))?;
        let first = opened_rx
            .recv()
            .map_err(|_| fail("the store thread stopped while connecting".into()))?;
        if let Err(message) = first {
            let _ = thread.join();
            return Err(fail(message));
        }
        Ok(PgStore {
            requests: Some(requests),
            worker: Some(thread),
            target,
        })
    }

    /// The database URL without its password.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The ingest id up to which every row version is committed or never will be: read
    /// changes up to it and none is skipped (module `changes` says how that holds with
    /// writers committing out of id order). Waits for in-flight writes (at most 5 s).
    pub fn settled_ingest_id(&self) -> Result<u64, StoreError> {
        match self.call(Op::Settled)? {
            Reply::Id(id) => Ok(id),
            other => Err(Self::unexpected("settled_ingest_id", "", other)),
        }
    }

    /// The row versions of `trees` ([`RECORDS`] for the records) with `after < id <= upto`,
    /// in id order, at most `limit`; the page says where it ends (the next `after`). A row
    /// deleted, or written again, since is not shown at its old id.
    pub fn changes(
        &self,
        after: u64,
        upto: u64,
        trees: &[&str],
        limit: usize,
    ) -> Result<ChangesPage, StoreError> {
        let tree = trees.first().copied().unwrap_or_default();
        match self.call(Op::Changes {
            after,
            upto,
            trees: trees.iter().map(|t| t.to_string()).collect(),
            limit: limit.max(1),
        })? {
            Reply::Page(page) => Ok(page),
            other => Err(Self::unexpected("changes", tree, other)),
        }
    }

    fn call(&self, op: Op) -> Result<Reply, StoreError> {
        let (operation, tree) = (op.name(), op.tree().to_string());
        let gone = |tree: String| StoreError {
            operation,
            tree,
            message: format!("the store thread for {} has stopped", self.target),
        };
        let (reply, answer) = mpsc::sync_channel(1);
        self.requests
            .as_ref()
            .ok_or_else(|| gone(tree.clone()))?
            .send(Request { op, reply })
            .map_err(|_| gone(tree.clone()))?;
        answer.recv().map_err(|_| gone(tree))?
    }

    fn unexpected(operation: &'static str, tree: &str, reply: Reply) -> StoreError {
        StoreError {
            operation,
            tree: tree.to_string(),
            message: format!("internal: unexpected reply {reply:?}"),
        }
    }
}

/// The client settings of `options` (password, connect timeout, application name) and the
/// TLS connector when `ca_file` is set; the error names the URL without its password.
fn client_config(
    options: &PgOptions,
) -> Result<(tokio_postgres::Config, Option<tls::MakeRustls>), String> {
    let target = redact(&options.url);
    let mut config: tokio_postgres::Config = options
        .url
        .parse()
        .map_err(|e| format!("invalid database URL {target}: {e}"))?;
    if let Some(password) = &options.password {
        config.password(password);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("coldaisle-collector");
    }
    let tls = match &options.ca_file {
        Some(ca_file) => {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            Some(tls::MakeRustls::from_ca_file(ca_file)?)
        }
        None => None,
    };
    Ok((config, tls))
}

impl KvStore for PgStore {
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.call(Op::Get {
            tree: tree.to_string(),
            key: key.to_vec(),
        })? {
            Reply::Value(v) => Ok(v),
            other => Err(Self::unexpected("get", tree, other)),
        }
    }

    /// One query for all the keys (one round trip, not one per key).
    fn get_many(&self, tree: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        match self.call(Op::GetMany {
            tree: tree.to_string(),
            keys: keys.to_vec(),
        })? {
            Reply::Values(v) => Ok(v),
            other => Err(Self::unexpected("get_many", tree, other)),
        }
    }

    fn apply(&self, tree: &str, batch: WriteBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        match self.call(Op::Apply {
            batches: vec![(tree.to_string(), batch)],
        })? {
            Reply::Done => Ok(()),
            other => Err(Self::unexpected("apply", tree, other)),
        }
    }

    /// One transaction, so one commit, for every tree's batch.
    fn apply_trees(&self, batches: Vec<(&str, WriteBatch)>) -> Result<(), StoreError> {
        let batches: Vec<(String, WriteBatch)> = batches
            .into_iter()
            .filter(|(_, b)| !b.is_empty())
            .map(|(tree, b)| (tree.to_string(), b))
            .collect();
        let Some(tree) = batches.first().map(|(t, _)| t.clone()) else {
            return Ok(());
        };
        match self.call(Op::Apply { batches })? {
            Reply::Done => Ok(()),
            other => Err(Self::unexpected("apply", &tree, other)),
        }
    }

    fn scan(&self, tree: &str, from: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        match self.call(Op::Scan {
            tree: tree.to_string(),
            from: from.to_vec(),
            limit,
        })? {
            Reply::Entries(e) => Ok(e),
            other => Err(Self::unexpected("scan", tree, other)),
        }
    }

    fn last(&self, tree: &str) -> Result<Option<Entry>, StoreError> {
        match self.call(Op::Last {
            tree: tree.to_string(),
        })? {
            Reply::Entries(e) => Ok(e.into_iter().next()),
            other => Err(Self::unexpected("last", tree, other)),
        }
    }

    fn len(&self, tree: &str) -> Result<usize, StoreError> {
        match self.call(Op::Len {
            tree: tree.to_string(),
        })? {
            Reply::Count(n) => Ok(n),
            other => Err(Self::unexpected("len", tree, other)),
        }
    }

    /// One `INSERT ... ON CONFLICT DO NOTHING`, committed (durable) when it returns.
    fn insert_new(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<bool, StoreError> {
        match self.call(Op::InsertNew {
            tree: tree.to_string(),
            key: key.to_vec(),
            value: value.to_vec(),
        })? {
            Reply::Inserted(written) => Ok(written),
            other => Err(Self::unexpected("insert_new", tree, other)),
        }
    }

    /// Nothing to do: every `apply` committed, and a commit is durable.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Closing the channel ends the worker's loop; joining closes the connection before
        // drop returns (a test may stop the server next).
        self.requests.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod backup_tests;
#[cfg(test)]
mod changes_tests;
#[cfg(test)]
mod lease_tests;
#[cfg(test)]
mod tests;
