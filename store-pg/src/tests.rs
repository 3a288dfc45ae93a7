//! Against a real PostgreSQL 15 started by the test kit (`./test.sh` installs it).

use super::*;
use coldaisle_store::{contract, visit_from, MemoryStore};
use coldaisle_testkit::postgres::Postgres;
use std::ops::ControlFlow;
use std::time::Instant;

/// A server and a fresh database in it, opened as a store.
pub(crate) fn open(pg: &Postgres, database: &str) -> PgStore {
    pg.create_database(database).expect("create database");
    PgStore::open(PgOptions {
        url: pg.url(database),
        password: Some(Postgres::PASSWORD.into()),
        ca_file: None,
    })
    .expect("open store")
}

#[test]
fn passes_the_store_contract() {
    let pg = Postgres::start().expect("postgres");
    contract::exercise(&open(&pg, "contract"));
    contract::visit_from_crosses_chunks_and_stops_early(&open(&pg, "visit"));
    contract::insert_new_claims_once(&open(&pg, "insert_new"));
}

/// Two collectors (two stores, two connections) on one database appending actions or
/// silences at once: the id claim is atomic across them, so no entry overwrites another.
#[test]
fn two_stores_on_one_database_allocating_ids_concurrently_lose_nothing() {
    let pg = Postgres::start().expect("postgres");
    let first = open(&pg, "ids");
    let second = PgStore::open(PgOptions {
        url: pg.url("ids"),
        password: Some(Postgres::PASSWORD.into()),
        ca_file: None,
    })
    .expect("second store on the same database");
    contract::next_id_never_loses_an_entry(&[&first, &second, &first, &second], 30);
}

/// A records key as the collector writes it.
pub(crate) fn record_key(agent: &str, seq: u64) -> Vec<u8> {
    let mut key = agent.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

#[test]
fn records_tree_is_a_table_by_agent_and_seq_that_scans_like_the_reference() {
    let pg = Postgres::start().expect("postgres");
    let store = open(&pg, "records");
    let reference = MemoryStore::new();
    let agents = ["a", "ab", "b", "rack-10", "rack-9", "zé"];
    let mut batch = WriteBatch::default();
    for (i, agent) in agents.iter().enumerate() {
        for seq in [1u64, 2, 3, 255, 256, 70_000, 1 << 40] {
            batch.insert(
                record_key(agent, seq),
                format!("{agent}/{seq}/{i}").into_bytes(),
            );
        }
    }
    // The same key twice in one batch, and a removal after an insert: the last one wins.
    batch.insert(record_key("a", 2), b"second".to_vec());
    batch.remove(record_key("b", 3));
    for s in [&store as &dyn KvStore, &reference] {
        s.apply(RECORDS, batch.clone()).expect("apply");
    }
    let rows = pg
        .psql("records", "SELECT count(*) FROM records")
        .expect("count rows");
    assert_eq!(
        rows, "41",
        "6 agents × 7 seqs − 1 removed, in the records table"
    );
    let by_agent_seq = pg
        .psql(
            "records",
            "SELECT value FROM records WHERE agent = 'a' AND seq = 2",
        )
        .expect("row");
    assert_eq!(by_agent_seq, "\\x7365636f6e64", "`second`, by (agent, seq)");
    let pkey = pg
        .psql(
            "records",
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'records'",
        )
        .expect("index");
    assert!(pkey.contains("(agent, seq)"), "{pkey}");

    let mut starts: Vec<Vec<u8>> =
        vec![b"".to_vec(), b"a".to_vec(), b"ab\0".to_vec(), b"r".to_vec()];
    for agent in agents {
        for seq in [0u64, 3, 4, 256, 1 << 40, (1 << 40) + 1, u64::MAX] {
            let key = record_key(agent, seq);
            starts.push(key[..key.len() - 3].to_vec());
            let mut after = key.clone();
            after.push(0);
            starts.push(after);
            starts.push(key);
        }
    }
    for from in &starts {
        for limit in [1, 5, 100] {
            assert_eq!(
                store.scan(RECORDS, from, limit).expect("scan"),
                reference.scan(RECORDS, from, limit).expect("scan"),
                "scan from {from:?} limit {limit}"
            );
        }
    }
    assert_eq!(
        store.last(RECORDS).expect("last"),
        reference.last(RECORDS).expect("last")
    );
    assert_eq!(store.len(RECORDS).expect("len"), 41);
    assert_eq!(
        store.get(RECORDS, &record_key("a", 2)).expect("get"),
        Some(b"second".to_vec())
    );
    assert_eq!(store.get(RECORDS, &record_key("b", 3)).expect("get"), None);
    let mut visited = Vec::new();
    visit_from(&store, RECORDS, b"ab\0", |k, _| {
        visited.push(k.to_vec());
        ControlFlow::Continue(())
    })
    .expect("visit");
    let mut expected = Vec::new();
    visit_from(&reference, RECORDS, b"ab\0", |k, _| {
        expected.push(k.to_vec());
        ControlFlow::Continue(())
    })
    .expect("visit");
    assert_eq!(visited, expected);

    // A key of another layout is refused, and the whole batch with it.
    let mut bad = WriteBatch::default();
    bad.insert(record_key("c", 1), b"x".to_vec());
    bad.insert(b"no-separator".to_vec(), b"x".to_vec());
    let err = store.apply(RECORDS, bad).expect_err("odd key");
    assert!(err.to_string().contains("0x00"), "{err}");
    assert_eq!(store.get(RECORDS, &record_key("c", 1)).expect("get"), None);
}

#[test]
fn migrations_apply_once_and_a_newer_schema_is_refused() {
    let pg = Postgres::start().expect("postgres");
    let first = open(&pg, "schema");
    let options = PgOptions {
        url: pg.url("schema"),
        password: Some(Postgres::PASSWORD.into()),
        ca_file: None,
    };
    let second = PgStore::open(options.clone()).expect("reopen");
    drop((first, second));
    let versions = pg
        .psql(
            "schema",
            "SELECT string_agg(version::text, ',') FROM schema_migrations",
        )
        .expect("versions");
    assert_eq!(versions, "1,2");
    pg.psql(
        "schema",
        "INSERT INTO schema_migrations (version, name) VALUES (99, 'from the future')",
    )
    .expect("future version");
    let err = PgStore::open(options).expect_err("newer schema");
    assert!(err.to_string().contains("version 99"), "{err}");
}

#[test]
fn a_database_down_or_refusing_us_is_a_clear_error_and_the_store_reconnects() {
    let mut pg = Postgres::start().expect("postgres");
    pg.create_database("down").expect("database");
    let with_password = format!(
        "postgres://{}:{}@127.0.0.1:{}/down",
        Postgres::USER,
        Postgres::PASSWORD,
        pg.port()
    );
    let wrong = PgStore::open(PgOptions {
        url: pg.url("down"),
        password: Some("wrong".into()),
        ca_file: None,
    })
    .expect_err("wrong password");
    assert!(
        wrong.to_string().contains(&pg.url("down")) && wrong.to_string().contains("password"),
        "names the URL and the cause: {wrong}"
    );
    let store = PgStore::open(PgOptions {
        url: with_password.clone(),
        password: None,
        ca_file: None,
    })
    .expect("open");
    let mut batch = WriteBatch::default();
    batch.insert(b"k".to_vec(), b"before".to_vec());
    store.apply("t", batch).expect("apply");

    pg.stop();
    let mut batch = WriteBatch::default();
    batch.insert(b"k".to_vec(), b"during".to_vec());
    let lost = store.apply("t", batch.clone()).expect_err("server down");
    let again = store.get("t", b"k").expect_err("still down");
    for err in [&lost, &again] {
        let text = err.to_string();
        assert!(!text.contains(Postgres::PASSWORD), "no password: {text}");
    }
    assert!(
        again.to_string().contains(&redact(&with_password)),
        "{again}"
    );

    pg.restart().expect("restart");
    let started = Instant::now();
    let value = loop {
        match store.get("t", b"k") {
            Ok(v) => break v,
            Err(e) if started.elapsed() < std::time::Duration::from_secs(20) => {
                assert!(!e.to_string().contains(Postgres::PASSWORD), "{e}");
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => panic!("no reconnection after the restart: {e}"),
        }
    };
    assert_eq!(
        value,
        Some(b"before".to_vec()),
        "committed before the outage"
    );
    store.apply("t", batch).expect("apply after reconnecting");
    assert_eq!(store.get("t", b"k").expect("get"), Some(b"during".to_vec()));
    drop(store);

    pg.stop();
    let down = PgStore::open(PgOptions {
        url: with_password.clone(),
        password: None,
        ca_file: None,
    })
    .expect_err("open while down");
    assert!(
        down.to_string().contains(&redact(&with_password))
            && !down.to_string().contains(Postgres::PASSWORD),
        "{down}"
    );
}

/// The collector calls the store from async code too (start-up, API handlers): that must
/// neither panic (no nested runtime) nor deadlock, even on a current-thread runtime.
#[tokio::test(flavor = "current_thread")]
async fn works_from_inside_a_current_thread_runtime() {
    let pg = Postgres::start().expect("postgres");
    let store = open(&pg, "in_runtime");
    let mut batch = WriteBatch::default();
    batch.insert(b"k".to_vec(), b"v".to_vec());
    store.apply("t", batch).expect("apply");
    assert_eq!(store.get("t", b"k").expect("get"), Some(b"v".to_vec()));
    drop(store);
}

#[test]
fn tls_with_the_ca_file_is_verified_and_used() {
    let pki = coldaisle_testkit::pki::TestPki::generate().expect("pki");
    let pg = Postgres::start_with_tls(&pki.path("server.pem"), &pki.path("server.key"))
        .expect("postgres with TLS");
    pg.create_database("tls").expect("database");
    let options = |ca: &str| PgOptions {
        url: pg.url("tls"),
        password: Some(Postgres::PASSWORD.into()),
        ca_file: Some(pki.path(ca)),
    };
    let store = PgStore::open(options("ca.pem")).expect("open over TLS");
    contract::exercise(&store);
    let over_tls = pg
        .psql(
            "tls",
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
             WHERE ssl AND application_name = 'coldaisle-collector'",
        )
        .expect("pg_stat_ssl");
    assert_eq!(over_tls, "1", "the store's session is encrypted");
    drop(store);
    let err = PgStore::open(options("other-ca.pem")).expect_err("untrusted server");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "says why: {err}"
    );
}
