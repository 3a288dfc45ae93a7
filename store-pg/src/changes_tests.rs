//! Change reading ([`PgStore::settled_ingest_id`], [`PgStore::changes`]) against a real
//! PostgreSQL 15, with a writer that commits out of id order.

use super::*;
use crate::tests::{open, record_key};
use coldaisle_testkit::postgres::Postgres;
use std::sync::mpsc as std_mpsc;

fn options(pg: &Postgres, database: &str) -> PgOptions {
    PgOptions {
        url: pg.url(database),
        password: Some(Postgres::PASSWORD.into()),
        ca_file: None,
    }
}

fn put(store: &PgStore, tree: &str, key: Vec<u8>, value: &[u8]) {
    let mut batch = WriteBatch::default();
    batch.insert(key, value.to_vec());
    store.apply(tree, batch).expect("apply");
}

/// Every change after `after`, read in pages of `limit`.
fn all_changes(store: &PgStore, after: u64, trees: &[&str], limit: usize) -> (Vec<Change>, u64) {
    let upto = store.settled_ingest_id().expect("settled");
    let mut cursor = TailCursor::new();
    cursor.rebuilt(after);
    let mut out = Vec::new();
    while let TailStep::Read { after, upto } = cursor.plan(upto) {
        let page = store.changes(after, upto, trees, limit).expect("changes");
        out.extend(page.changes.iter().cloned());
        cursor.advance(&page);
    }
    (out, upto)
}

#[test]
fn changes_follow_writes_in_id_order_and_a_rewrite_to_the_same_value_is_not_a_change() {
    let pg = Postgres::start().expect("postgres");
    let store = open(&pg, "changes");
    assert_eq!(
        store.settled_ingest_id().expect("settled"),
        0,
        "nothing written"
    );
    put(&store, RECORDS, record_key("a", 1), b"r1");
    put(&store, "actions", b"\x01".to_vec(), b"act1");
    put(&store, "notify", b"n".to_vec(), b"not followed");
    put(&store, RECORDS, record_key("b", 7), b"r2");
    let trees = [RECORDS, "actions", "agents"];
    let (changes, settled) = all_changes(&store, 0, &trees, 1);
    let seen: Vec<(&str, &[u8])> = changes
        .iter()
        .map(|c| (c.tree.as_str(), c.value.as_slice()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (RECORDS, b"r1".as_slice()),
            ("actions", b"act1".as_slice()),
            (RECORDS, b"r2".as_slice())
        ],
        "in write order, pages of one, other trees left out"
    );
    assert_eq!(changes[2].key, record_key("b", 7));
    assert!(changes.windows(2).all(|w| w[0].id < w[1].id));

    // The same value again: no new change. Another value: one, at a higher id.
    put(&store, RECORDS, record_key("a", 1), b"r1");
    put(&store, "actions", b"\x01".to_vec(), b"act1");
    assert!(all_changes(&store, settled, &trees, 10).0.is_empty());
    put(&store, "agents", b"a".to_vec(), b"ledger v2");
    let (later, _) = all_changes(&store, settled, &trees, 10);
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].value, b"ledger v2");
    assert!(later[0].id > settled);
}

#[test]
fn a_writer_committing_a_lower_id_late_is_waited_for_not_skipped() {
    let pg = Postgres::start().expect("postgres");
    let store = open(&pg, "late");
    put(&store, RECORDS, record_key("a", 1), b"first");
    let before = store.settled_ingest_id().expect("settled");

    // Another session inserts (taking the next id) and holds its transaction open.
    let url = pg.url("late");
    let (inserted, inserted_rx) = std_mpsc::channel();
    let writer = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let mut config: tokio_postgres::Config = url.parse().expect("url");
            config.password(Postgres::PASSWORD);
            let (mut client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(connection);
            let tx = client.transaction().await.expect("begin");
            tx.execute(
                "INSERT INTO records (agent, seq, value) VALUES ('late', 1, 'slow')",
                &[],
            )
            .await
            .expect("insert");
            inserted.send(()).expect("signal");
            tokio::time::sleep(std::time::Duration::from_millis(700)).await;
            tx.commit().await.expect("commit");
        });
    });
    inserted_rx.recv().expect("the slow writer inserted");
    // A later write commits first, with a higher id.
    put(&store, RECORDS, record_key("b", 1), b"fast");
    let ids = pg
        .psql(
            "late",
            "SELECT string_agg(agent || '=' || ingest_id, ',' ORDER BY agent) FROM records",
        )
        .expect("ids");
    assert!(ids.starts_with("a="), "{ids}");

    let (changes, _) = all_changes(&store, before, &[RECORDS], 10);
    writer.join().expect("writer thread");
    let values: Vec<&[u8]> = changes.iter().map(|c| c.value.as_slice()).collect();
    assert_eq!(
        values,
        vec![b"slow".as_slice(), b"fast".as_slice()],
        "the lower id committed last is read, in id order ({ids})"
    );
}

#[test]
fn a_version_1_database_gets_ingest_ids_for_its_rows() {
    let pg = Postgres::start().expect("postgres");
    pg.create_database("old").expect("database");
    pg.psql(
        "old",
        &format!(
            "{} CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO schema_migrations (version, name) VALUES (1, 'records and kv tables');
             INSERT INTO records VALUES ('a', 1, 'r'), ('a', 2, 's');
             INSERT INTO kv VALUES ('actions', '\\x01', 'act');
             SELECT 1",
            include_str!("../migrations/0001_initial.sql")
        ),
    )
    .expect("a version 1 database");
    let store = PgStore::open(options(&pg, "old")).expect("migrate");
    let (changes, settled) = all_changes(&store, 0, &[RECORDS, "actions"], 10);
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert_eq!(settled, 3);
    put(&store, RECORDS, record_key("a", 3), b"t");
    let (later, _) = all_changes(&store, settled, &[RECORDS], 10);
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].id, 4);
}
