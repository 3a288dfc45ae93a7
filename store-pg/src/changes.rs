//! Reading what changed since an ingest id (the queries behind [`crate::tail`]).
//!
//! **Why a settled id, and how it is exact under concurrent writers.** Ingest ids come from
//! a sequence, which hands them out when a row is written, not when its transaction commits:
//! a transaction may commit id 103 after another committed id 105. A reader that saw 105 and
//! moved its cursor there would skip 103 for good. So a reader never reads beyond the
//! *settled* id ([`settled`]): it takes `SHARE` locks on `kv` and `records` (a `SHARE` lock
//! waits for every transaction that inserted, updated or deleted rows in the table, and keeps
//! new ones out while held) and reads the sequence's last value. At that instant no writer is
//! in flight, so every id handed out so far belongs to a transaction that has committed (its
//! rows are visible from then on) or rolled back (its ids will never appear); every later id
//! is higher. The locks are released at once (one short transaction): writers pause for the
//! time the lock takes, not for the read that follows.
//!
//! Alternatives weighed: re-reading a trailing window of ids is exact only if no writer stays
//! open longer than the window; `xid8` columns compared with `pg_snapshot_xmin` need no lock,
//! but dumped and restored rows keep their old transaction ids while the restored server
//! counts from its own, so the window would never close after a restore. A restored sequence
//! keeps its value (pg_dump sets it), so ingest ids stay monotonic across a restore.
//!
//! `SHARE` also conflicts with `SHARE UPDATE EXCLUSIVE` (vacuum, analyze): an autovacuum of
//! one of the tables is cancelled by the server after `deadlock_timeout` (1 s) so the reader
//! goes on; a manual `VACUUM` or an anti-wraparound one is waited for up to the lock timeout,
//! then the refresh is retried at the next `refresh_every`. `pg_dump` (`ACCESS SHARE`) does not
//! conflict.
//!
//! Deadlocks: the reader locks `kv` before `records`, and [`crate::ops`] writes `kv` before
//! `records` in every transaction, so a writer holding `records` and waiting for `kv` cannot
//! meet a reader holding `kv` and waiting for `records`.

use crate::conn::Conn;
use crate::ops::{OpError, RECORDS};
use crate::records_key;
use crate::tail::{self, Change, ChangesPage};

/// How long the reader waits for in-flight writers before giving up (it retries at its next
/// refresh; writers queue behind a waiting lock meanwhile, so this bounds their pause too).
const LOCK_TIMEOUT: &str = "5s";

/// The highest ingest id below which no row can still appear (see the module doc).
pub(crate) async fn settled(conn: &mut Conn) -> Result<u64, OpError> {
    let tx = conn.transaction().await?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; LOCK TABLE kv, records IN SHARE MODE"
    ))
    .await?;
    let row = tx
        .query_one(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM ingest_ids",
            &[],
        )
        .await?;
    tx.commit().await?;
    let id: i64 = row.try_get(0)?;
    Ok(u64::try_from(id).unwrap_or(0))
}

/// The changes of `trees` (tree [`RECORDS`] for the records table) with `after < id <= upto`,
/// at most `limit` (≥ 1), and where the page ends.
pub(crate) async fn read(
    conn: &mut Conn,
    after: u64,
    upto: u64,
    trees: &[String],
    limit: usize,
) -> Result<ChangesPage, OpError> {
    let (from, to) = (to_i64(after), to_i64(upto));
    let count = to_i64(u64::try_from(limit).unwrap_or(u64::MAX));
    let records = if trees.iter().any(|t| t == RECORDS) {
        conn.query(
            "SELECT ingest_id, agent, seq, value FROM records
             WHERE ingest_id > $1 AND ingest_id <= $2 ORDER BY ingest_id LIMIT $3",
            &[&from, &to, &count],
        )
        .await?
        .into_iter()
        .map(|row| {
            let agent: &str = row.try_get(1)?;
            Ok(Change {
                id: id_of(row.try_get(0)?),
                tree: RECORDS.to_string(),
                key: records_key::encode(agent, row.try_get(2)?),
                value: row.try_get(3)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?
    } else {
        Vec::new()
    };
    let others: Vec<&str> = trees
        .iter()
        .map(String::as_str)
        .filter(|t| *t != RECORDS)
        .collect();
    let kv = if others.is_empty() {
        Vec::new()
    } else {
        conn.query(
            "SELECT ingest_id, tree, key, value FROM kv
             WHERE ingest_id > $1 AND ingest_id <= $2 AND tree = ANY($3)
             ORDER BY ingest_id LIMIT $4",
            &[&from, &to, &others, &count],
        )
        .await?
        .into_iter()
        .map(|row| {
            Ok(Change {
                id: id_of(row.try_get(0)?),
                tree: row.try_get(1)?,
                key: row.try_get(2)?,
                value: row.try_get(3)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?
    };
    Ok(tail::page_end(records, kv, limit, upto))
}

/// An id as a query parameter (ids are positive `bigint`s, so at most `i64::MAX`).
fn to_i64(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// A stored id (never negative: the sequence starts at 1).
fn id_of(id: i64) -> u64 {
    u64::try_from(id).unwrap_or(0)
}
