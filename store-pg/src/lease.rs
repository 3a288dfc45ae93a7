//! A named lease between collectors on one database: a PostgreSQL session-level advisory lock
//! held on a connection of its own.
//!
//! Invariants and failure modes (ARCHITECTURE.md, "Collector failover", says why a lock and
//! not a lease row):
//! - At most one session holds a lease: the server grants `pg_try_advisory_lock` to one
//!   session and keeps it until that session unlocks or ends. There is no expiry to tune and
//!   no clock shared between machines.
//! - The holder's process dying (kill -9, crash) closes its socket: the server ends the
//!   session and frees the lock at once. A holder that hangs with its socket open (SIGSTOP,
//!   a frozen VM) loses the lock after `idle_session_timeout` (set per session to
//!   [`IDLE_LIMIT`]: [`PgLease::holds`] runs a query far more often than that). A holder
//!   whose machine or network vanishes loses it once the server's TCP keepalive gives up
//!   (set per session: about [`IDLE_LIMIT`] too).
//! - A holder learns that it lost the lease only at its next [`PgLease::holds`]: between two
//!   checks it may still act (the collector checks every `check_every`, 1 s by default, and
//!   stops working when a check fails).
//! - The session's `application_name` names the holder, so anyone can ask who holds a lease
//!   ([`PgLease::holder`]).

use crate::{client_config, PgOptions};
use std::time::Duration;
use tokio_postgres::{Client, NoTls};

/// How long a lease session may stay idle or unreachable before the server ends it (and
/// frees the lease).
pub const IDLE_LIMIT: Duration = Duration::from_secs(10);

/// Prefix of the lease sessions' `application_name` (the holder's name follows).
const APPLICATION: &str = "coldaisle-lease ";

/// Why a lease operation failed (the connection is then unusable: reconnect).
#[derive(Debug, thiserror::Error)]
#[error("lease {lease:?} on {target}: {message}")]
pub struct LeaseError {
    /// The lease's name.
    pub lease: String,
    /// The database URL without password.
    pub target: String,
    /// What failed.
    pub message: String,
}

/// One collector's side of a named lease (its own connection).
pub struct PgLease {
    client: Client,
    /// The lease's name.
    name: String,
    /// The advisory lock key of `name`, as the two 32-bit halves `pg_locks` shows.
    key: (i64, i64),
    /// Whether this session took the lock (advisory locks are re-entrant: never take twice).
    held: bool,
    target: String,
}

impl std::fmt::Debug for PgLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLease")
            .field("name", &self.name)
            .field("held", &self.held)
            .field("target", &self.target)
            .finish()
    }
}

/// The advisory lock key of a lease name: FNV-1a (64 bit), stable across builds and
/// machines, split into the `(classid, objid)` halves `pg_locks` shows.
pub fn lock_key(name: &str) -> (i64, i64) {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b"coldaisle-lease:".iter().chain(name.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (i64::from((hash >> 32) as u32), i64::from(hash as u32))
}

impl PgLease {
    /// Opens the lease's own session on the caller's runtime (does not take the lease).
    /// `holder` names this collector to others.
    pub async fn connect(
        options: &PgOptions,
        name: &str,
        holder: &str,
    ) -> Result<PgLease, LeaseError> {
        let target = crate::redact(&options.url);
        let fail = |message: String| LeaseError {
            lease: name.to_string(),
            target: target.clone(),
            message,
        };
        let (mut config, tls) = client_config(options).map_err(fail)?;
        config.application_name(format!("{APPLICATION}{holder}"));
        let client = match tls {
            None => {
                let (client, connection) = config
                    .connect(NoTls)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                tokio::spawn(drive(connection));
                client
            }
            Some(tls) => {
                let (client, connection) =
                    config.connect(tls).await.map_err(|e| fail(e.to_string()))?;
                tokio::spawn(drive(connection));
                client
            }
        };
        let limit = IDLE_LIMIT.as_secs();
        let interval = (limit / 5).max(1);
        client
            .batch_execute(&format!(
                "SET idle_session_timeout = '{limit}s'; SET tcp_keepalives_idle = {interval}; \
                 SET tcp_keepalives_interval = {interval}; SET tcp_keepalives_count = 4"
            ))
            .await
            .map_err(|e| fail(format!("setting the session's timeouts: {e}")))?;
        Ok(PgLease {
            client,
            name: name.to_string(),
            key: lock_key(name),
            held: false,
            target,
        })
    }

    fn fail(&self, message: impl std::fmt::Display) -> LeaseError {
        LeaseError {
            lease: self.name.clone(),
            target: self.target.clone(),
            message: message.to_string(),
        }
    }

    /// Takes the lease if nobody holds it; `true` when this session holds it now.
    pub async fn try_acquire(&mut self) -> Result<bool, LeaseError> {
        if self.held {
            return self.holds().await;
        }
        let row = self
            .client
            .query_one(
                "SELECT pg_try_advisory_lock(($1::int8 << 32) | $2::int8)",
                &[&self.key.0, &self.key.1],
            )
            .await
            .map_err(|e| self.fail(e))?;
        self.held = row.try_get(0).map_err(|e| self.fail(e))?;
        Ok(self.held)
    }

    /// Whether this session still holds the lease (asks the server: a session the server
    /// ended fails here).
    pub async fn holds(&mut self) -> Result<bool, LeaseError> {
        let row = self
            .client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
                 AND pid = pg_backend_pid() AND classid::int8 = $1 AND objid::int8 = $2 \
                 AND objsubid = 1 AND granted)",
                &[&self.key.0, &self.key.1],
            )
            .await
            .map_err(|e| self.fail(e))?;
        self.held = row.try_get(0).map_err(|e| self.fail(e))?;
        Ok(self.held)
    }

    /// The name of the collector holding the lease, if any.
    pub async fn holder(&self) -> Result<Option<String>, LeaseError> {
        let row = self
            .client
            .query_opt(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a \
                 ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.classid::int8 = $1 \
                 AND l.objid::int8 = $2 AND l.objsubid = 1 AND l.granted LIMIT 1",
                &[&self.key.0, &self.key.1],
            )
            .await
            .map_err(|e| self.fail(e))?;
        let Some(row) = row else { return Ok(None) };
        let name: String = row.try_get(0).map_err(|e| self.fail(e))?;
        Ok(Some(
            name.strip_prefix(APPLICATION).unwrap_or(&name).to_string(),
        ))
    }

    /// True once the session is gone (reconnect to try again).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

/// Runs a connection's I/O until it ends.
async fn drive<C>(connection: C)
where
    C: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "postgres lease connection ended");
    }
}
