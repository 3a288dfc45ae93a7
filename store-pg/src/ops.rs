//! The [`KvStore`](coldaisle_store::KvStore) operations as SQL on one connection.
//!
//! Tree [`RECORDS`] lives in table `records` (primary key `(agent, seq)`, see
//! [`crate::records_key`]); every other tree in table `kv` (primary key `(tree, key)`).
//! An apply is one transaction, of one tree's batch or of several trees' batches
//! ([`coldaisle_store::KvStore::apply_trees`]): per tree one `DELETE` for its removals and one
//! multi-row `INSERT ... ON CONFLICT DO UPDATE` (rows passed as arrays through `unnest`) for
//! its inserts, after reducing it to the last operation per key (what applying it in order
//! does). A row inserted, or updated to another value, takes the next ingest id (the
//! column's default; an update to the same value keeps its id), which change readers follow
//! ([`crate::changes`]).

use crate::conn::Conn;
use crate::records_key::{self, LowerBound};
use coldaisle_store::{Entry, WriteBatch};
use std::collections::BTreeMap;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

/// The collector's records tree (`collector/src/store.rs`), stored by `(agent, seq)`.
pub const RECORDS: &str = "records";

/// One store operation.
#[derive(Debug)]
pub(crate) enum Op {
    Get {
        tree: String,
        key: Vec<u8>,
    },
    GetMany {
        tree: String,
        keys: Vec<Vec<u8>>,
    },
    /// Batches for one or more trees, applied in one transaction (the first tree names the
    /// operation in errors).
    Apply {
        batches: Vec<(String, WriteBatch)>,
    },
    Scan {
        tree: String,
        from: Vec<u8>,
        limit: usize,
    },
    Last {
        tree: String,
    },
    Len {
        tree: String,
    },
    /// Insert `value` at `key` if absent (`INSERT ... ON CONFLICT DO NOTHING`).
    InsertNew {
        tree: String,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// The settled ingest id ([`crate::changes::settled`]).
    Settled,
    /// The changes of `trees` with `after < id <= upto`, at most `limit`.
    Changes {
        after: u64,
        upto: u64,
        trees: Vec<String>,
        limit: usize,
    },
}

impl Op {
    /// The operation's name, for [`coldaisle_store::StoreError::operation`].
    pub fn name(&self) -> &'static str {
        match self {
            Op::Get { .. } => "get",
            Op::GetMany { .. } => "get_many",
            Op::Apply { .. } => "apply",
            Op::Scan { .. } => "scan",
            Op::Last { .. } => "last",
            Op::Len { .. } => "len",
            Op::InsertNew { .. } => "insert_new",
            Op::Settled => "settled_ingest_id",
            Op::Changes { .. } => "changes",
        }
    }

    /// The tree it concerns.
    pub fn tree(&self) -> &str {
        match self {
            Op::Apply { batches } => batches.first().map_or("", |(tree, _)| tree.as_str()),
            Op::Changes { trees, .. } => trees.first().map_or("", String::as_str),
            Op::Settled => "",
            Op::Get { tree, .. }
            | Op::GetMany { tree, .. }
            | Op::Scan { tree, .. }
            | Op::Last { tree }
            | Op::Len { tree }
            | Op::InsertNew { tree, .. } => tree,
        }
    }
}

/// What an operation returns.
#[derive(Debug)]
pub(crate) enum Reply {
    Value(Option<Vec<u8>>),
    Values(Vec<Option<Vec<u8>>>),
    Done,
    Entries(Vec<Entry>),
    Count(usize),
    /// Whether an `InsertNew` wrote.
    Inserted(bool),
    Id(u64),
    Page(crate::tail::ChangesPage),
}

/// Why an operation failed.
#[derive(Debug)]
pub(crate) enum OpError {
    /// The database failed (or the connection did).
    Db(tokio_postgres::Error),
    /// The request cannot be stored (a records key of another layout).
    Invalid(String),
}

impl From<tokio_postgres::Error> for OpError {
    fn from(e: tokio_postgres::Error) -> Self {
        OpError::Db(e)
    }
}

/// Runs `op` on `conn`.
pub(crate) async fn run(conn: &mut Conn, op: Op) -> Result<Reply, OpError> {
    let records = op.tree() == RECORDS;
    match op {
        Op::Get { tree, key } => {
            let row = if records {
                let k = records_key::decode(&key).map_err(OpError::Invalid)?;
                conn.query_opt(
                    "SELECT value FROM records WHERE agent = $1 AND seq = $2",
                    &[&k.agent, &k.seq],
                )
                .await?
            } else {
                conn.query_opt(
                    "SELECT value FROM kv WHERE tree = $1 AND key = $2",
                    &[&tree, &key],
                )
                .await?
            };
            Ok(Reply::Value(row.map(|r| r.try_get(0)).transpose()?))
        }
        Op::GetMany { tree, keys } => {
            Ok(Reply::Values(get_many(conn, records, &tree, keys).await?))
        }
        Op::Apply { batches } => {
            apply(conn, batches).await?;
            Ok(Reply::Done)
        }
        Op::Scan { tree, from, limit } => {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = if records {
                scan_records(conn, &from, limit).await?
            } else {
                conn.query(
                    "SELECT key, value FROM kv WHERE tree = $1 AND key >= $2
                         ORDER BY key LIMIT $3",
                    &[&tree, &from, &limit],
                )
                .await?
            };
            Ok(Reply::Entries(entries(records, rows)?))
        }
        Op::Last { tree } => {
            let row = if records {
                conn.query_opt(
                    "SELECT agent, seq, value FROM records ORDER BY agent DESC, seq DESC
                         LIMIT 1",
                    &[],
                )
                .await?
            } else {
                conn.query_opt(
                    "SELECT key, value FROM kv WHERE tree = $1 ORDER BY key DESC LIMIT 1",
                    &[&tree],
                )
                .await?
            };
            Ok(Reply::Entries(entries(records, row.into_iter().collect())?))
        }
        Op::Len { tree } => {
            let row = if records {
                conn.query_one("SELECT count(*) FROM records", &[]).await?
            } else {
                conn.query_one("SELECT count(*) FROM kv WHERE tree = $1", &[&tree])
                    .await?
            };
            let n: i64 = row.try_get(0)?;
            Ok(Reply::Count(usize::try_from(n).unwrap_or(usize::MAX)))
        }
        Op::InsertNew { tree, key, value } => {
            // One statement, so one transaction: the primary key makes the claim atomic
            // against every other connection (a racing insert waits, then does nothing).
            let n = if records {
                let k = records_key::decode(&key).map_err(OpError::Invalid)?;
                conn.execute(
                    "INSERT INTO records (agent, seq, value) VALUES ($1, $2, $3)
                         ON CONFLICT (agent, seq) DO NOTHING",
                    &[&k.agent, &k.seq, &value],
                )
                .await?
            } else {
                conn.execute(
                    "INSERT INTO kv (tree, key, value) VALUES ($1, $2, $3)
                         ON CONFLICT (tree, key) DO NOTHING",
                    &[&tree, &key, &value],
                )
                .await?
            };
            Ok(Reply::Inserted(n == 1))
        }
        Op::Settled => Ok(Reply::Id(crate::changes::settled(conn).await?)),
        Op::Changes {
            after,
            upto,
            trees,
            limit,
        } => Ok(Reply::Page(
            crate::changes::read(conn, after, upto, &trees, limit).await?,
        )),
    }
}

/// The values of `keys` in one query (the keys as an array, joined back by position).
async fn get_many(
    conn: &mut Conn,
    records: bool,
    tree: &str,
    keys: Vec<Vec<u8>>,
) -> Result<Vec<Option<Vec<u8>>>, OpError> {
    let positions = i64::try_from(keys.len()).unwrap_or(i64::MAX);
    let rows = if records {
        let (mut agents, mut seqs) = (Vec::new(), Vec::new());
        for key in &keys {
            let k = records_key::decode(key).map_err(OpError::Invalid)?;
            agents.push(k.agent);
            seqs.push(k.seq);
        }
        conn.query(
            "SELECT u.i, r.value FROM unnest($1::text[], $2::int8[]) WITH ORDINALITY
                 AS u(agent, seq, i) JOIN records r ON r.agent = u.agent AND r.seq = u.seq",
            &[&agents, &seqs],
        )
        .await?
    } else {
        conn.query(
            "SELECT u.i, kv.value FROM unnest($2::bytea[]) WITH ORDINALITY AS u(key, i)
                 JOIN kv ON kv.tree = $1 AND kv.key = u.key",
            &[&tree, &keys],
        )
        .await?
    };
    let mut out = vec![None; keys.len()];
    for row in rows {
        let i: i64 = row.try_get(0)?;
        let slot = usize::try_from(i - 1)
            .ok()
            .filter(|_| i >= 1 && i <= positions)
            .and_then(|i| out.get_mut(i));
        if let Some(slot) = slot {
            *slot = Some(row.try_get(1)?);
        }
    }
    Ok(out)
}

/// A statement of an apply transaction and its row arrays; it runs only if it has rows.
struct Step {
    statement: Statement,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
    rows: usize,
}

impl Step {
    async fn new(
        conn: &mut Conn,
        sql: &str,
        params: Vec<Box<dyn ToSql + Sync + Send>>,
        rows: usize,
    ) -> Result<Step, OpError> {
        Ok(Step {
            statement: conn.statement(sql).await?,
            params,
            rows,
        })
    }
}

/// One tree's share of an apply transaction: the removal of its removed keys, then the
/// upsert of its stored ones.
struct Staged {
    delete: Step,
    insert: Step,
}

/// Applies every batch in one transaction (one commit).
async fn apply(conn: &mut Conn, batches: Vec<(String, WriteBatch)>) -> Result<(), OpError> {
    let mut staged = Vec::with_capacity(batches.len());
    // `kv` before `records` in every transaction: the lock order the change reader relies on
    // (crate::changes). The trees are separate rows, so the order changes no result.
    let (records, kv): (Vec<_>, Vec<_>) = batches.into_iter().partition(|(t, _)| t == RECORDS);
    for (tree, batch) in kv.into_iter().chain(records) {
        staged.push(if tree == RECORDS {
            stage_records(conn, batch).await?
        } else {
            stage_kv(conn, tree, batch).await?
        });
    }
    let tx = conn.transaction().await?;
    for step in staged.iter().flat_map(|s| [&s.delete, &s.insert]) {
        if step.rows > 0 {
            let params: Vec<&(dyn ToSql + Sync)> = step
                .params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            tx.execute(&step.statement, &params).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// The batch as its final state per key (what applying it in order leaves): the keys to
/// store with their values, and the keys to remove, each key as the columns `columns` makes.
#[allow(clippy::type_complexity)]
fn split<K>(
    batch: WriteBatch,
    columns: impl Fn(Vec<u8>) -> Result<K, OpError>,
) -> Result<(Vec<K>, Vec<Vec<u8>>, Vec<K>), OpError> {
    let last: BTreeMap<Vec<u8>, Option<Vec<u8>>> = batch.ops.into_iter().collect();
    let (mut keys, mut values, mut removed) = (Vec::new(), Vec::new(), Vec::new());
    for (key, value) in last {
        match value {
            Some(v) => {
                keys.push(columns(key)?);
                values.push(v);
            }
            None => removed.push(columns(key)?),
        }
    }
    Ok((keys, values, removed))
}

async fn stage_kv(conn: &mut Conn, tree: String, batch: WriteBatch) -> Result<Staged, OpError> {
    let (keys, values, removed) = split(batch, Ok)?;
    let (stored, gone) = (keys.len(), removed.len());
    Ok(Staged {
        delete: Step::new(
            conn,
            "DELETE FROM kv WHERE tree = $1 AND key = ANY($2)",
            vec![Box::new(tree.clone()), Box::new(removed)],
            gone,
        )
        .await?,
        insert: Step::new(
            conn,
            "INSERT INTO kv (tree, key, value)
             SELECT $1, k, v FROM unnest($2::bytea[], $3::bytea[]) AS u(k, v)
             ON CONFLICT (tree, key) DO UPDATE SET value = EXCLUDED.value,
                 ingest_id = CASE WHEN kv.value = EXCLUDED.value THEN kv.ingest_id
                                  ELSE EXCLUDED.ingest_id END",
            vec![Box::new(tree), Box::new(keys), Box::new(values)],
            stored,
        )
        .await?,
    })
}

async fn stage_records(conn: &mut Conn, batch: WriteBatch) -> Result<Staged, OpError> {
    let (keys, values, removed) = split(batch, |key| {
        records_key::decode(&key).map_err(OpError::Invalid)
    })?;
    let (stored, gone) = (keys.len(), removed.len());
    let (agents, seqs): (Vec<String>, Vec<i64>) =
        keys.into_iter().map(|k| (k.agent, k.seq)).unzip();
    let (gone_agents, gone_seqs): (Vec<String>, Vec<i64>) =
        removed.into_iter().map(|k| (k.agent, k.seq)).unzip();
    Ok(Staged {
        delete: Step::new(
            conn,
            "DELETE FROM records r USING unnest($1::text[], $2::int8[]) AS g(agent, seq)
             WHERE r.agent = g.agent AND r.seq = g.seq",
            vec![Box::new(gone_agents), Box::new(gone_seqs)],
            gone,
        )
        .await?,
        insert: Step::new(
            conn,
            "INSERT INTO records (agent, seq, value)
             SELECT * FROM unnest($1::text[], $2::int8[], $3::bytea[])
             ON CONFLICT (agent, seq) DO UPDATE SET value = EXCLUDED.value,
                 ingest_id = CASE WHEN records.value = EXCLUDED.value THEN records.ingest_id
                                  ELSE EXCLUDED.ingest_id END",
            vec![Box::new(agents), Box::new(seqs), Box::new(values)],
            stored,
        )
        .await?,
    })
}

async fn scan_records(conn: &mut Conn, from: &[u8], limit: i64) -> Result<Vec<Row>, OpError> {
    const COLUMNS: &str = "SELECT agent, seq, value FROM records";
    const ORDER: &str = "ORDER BY agent, seq LIMIT";
    let bound = records_key::lower_bound(from).map_err(OpError::Invalid)?;
    let (condition, agent, seq) = match &bound {
        LowerBound::AgentAtLeast(a) => ("agent >= $1", a, None),
        LowerBound::AgentAfter(a) => ("agent > $1", a, None),
        LowerBound::AtLeast(k) => ("(agent, seq) >= ($1, $2)", &k.agent, Some(k.seq)),
    };
    let rows = match seq {
        Some(seq) => {
            let params: [&(dyn ToSql + Sync); 3] = [agent, &seq, &limit];
            let sql = format!("{COLUMNS} WHERE {condition} {ORDER} $3");
            conn.query(&sql, &params).await?
        }
        None => {
            let params: [&(dyn ToSql + Sync); 2] = [agent, &limit];
            let sql = format!("{COLUMNS} WHERE {condition} {ORDER} $2");
            conn.query(&sql, &params).await?
        }
    };
    Ok(rows)
}

/// Rows as entries: `(key, value)` of `kv`, or `(agent, seq, value)` of `records`.
fn entries(records: bool, rows: Vec<Row>) -> Result<Vec<Entry>, tokio_postgres::Error> {
    rows.into_iter()
        .map(|row| {
            Ok(if records {
                let agent: &str = row.try_get(0)?;
                (records_key::encode(agent, row.try_get(1)?), row.try_get(2)?)
            } else {
                (row.try_get(0)?, row.try_get(1)?)
            })
        })
        .collect()
}
