//! Versioned migrations, embedded in the binary and applied at start.
//!
//! Table `schema_migrations (version, name, applied_at)` records what was applied. All
//! pending migrations run in one transaction under a transaction-level advisory lock, so two
//! collectors starting at once on one database apply each migration once. A database with a
//! version this build does not know is refused (an older collector must not write a newer
//! schema). Migrations are append-only: never edit one that was released.
//!
//! Why not refinery or sqlx: a dozen lines over the client we already have do what we need,
//! where either would add its own dependency tree (sqlx brings its own driver and runtime
//! glue) for a list of two statements.

use tokio_postgres::Client;

/// `(version, name, SQL)`, in version order starting at 1.
pub(crate) const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "records and kv tables",
        include_str!("../migrations/0001_initial.sql"),
    ),
    (
        2,
        "ingest ids",
        include_str!("../migrations/0002_ingest_ids.sql"),
    ),
];

/// Key of the advisory lock that serialises migrations ("coldaisl" in ASCII).
const MIGRATION_LOCK: i64 = 0x636f_6c64_6169_736c;

/// Applies the pending migrations; returns the schema version now in place.
pub(crate) async fn migrate(client: &mut Client) -> Result<i32, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version integer PRIMARY KEY,
            name text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let current: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await?
        .get(0);
    let mut version = current;
    for (v, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > current) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[v, name],
        )
        .await?;
        tracing::info!(version = v, name, "store migration applied");
        version = *v;
    }
    tx.commit().await?;
    Ok(version)
}

/// The highest version this build knows.
pub(crate) fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |(v, _, _)| *v)
}
