//! The backup and restore procedure of docs/operations.md, tried against a real PostgreSQL
//! 15: `pg_dump -Fc` of a store in use, `pg_restore` into a new database, and the store opened
//! on the restored database reads back exactly what was written.

use super::*;
use coldaisle_testkit::postgres::Postgres;

fn options(pg: &Postgres, database: &str) -> PgOptions {
    PgOptions {
        url: pg.url(database),
        password: Some(Postgres::PASSWORD.into()),
        ca_file: None,
    }
}

fn record_key(agent: &str, seq: u64) -> Vec<u8> {
    let mut key = agent.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn run(mut command: std::process::Command, what: &str) {
    let output = command.output().expect(what);
    assert!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn pg_dump_and_pg_restore_bring_back_every_tree() {
    let pg = Postgres::start().expect("postgres");
    pg.create_database("live").expect("create live");
    let store = PgStore::open(options(&pg, "live")).expect("open live");
    let mut records = WriteBatch::default();
    for seq in 1..=500u64 {
        records.insert(record_key("agent-1", seq), format!("r{seq}").into_bytes());
    }
    store.apply(RECORDS, records).expect("records");
    let mut notify = WriteBatch::default();
    notify.insert(b"q\x00\x01".to_vec(), b"job".to_vec());
    notify.insert(b"sreceiver\x00subject".to_vec(), b"sent".to_vec());
    store.apply("notify", notify).expect("notify");

    // While the store is open and in use: pg_dump takes a consistent snapshot.
    let dump = tempfile::tempdir().expect("tempdir");
    let file = dump.path().join("coldaisle.dump");
    let mut command = pg.tool("pg_dump").expect("pg_dump");
    command.args(["-Fc", "-d", "live", "-f"]).arg(&file);
    run(command, "pg_dump");
    pg.create_database("restored").expect("create restored");
    let mut command = pg.tool("pg_restore").expect("pg_restore");
    command.args(["--no-owner", "-d", "restored"]).arg(&file);
    run(command, "pg_restore");

    let restored = PgStore::open(options(&pg, "restored")).expect("open restored");
    for tree in [RECORDS, "notify"] {
        assert_eq!(
            restored.scan(tree, b"", usize::MAX).expect("scan restored"),
            store.scan(tree, b"", usize::MAX).expect("scan live"),
            "tree {tree} restored whole"
        );
    }
    assert_eq!(restored.len(RECORDS).expect("len"), 500);
    assert_eq!(
        pg.psql("restored", "SELECT max(version) FROM schema_migrations")
            .expect("schema version"),
        pg.psql("live", "SELECT max(version) FROM schema_migrations")
            .expect("schema version"),
        "the migration table comes along: the restored store is not migrated again"
    );
}
