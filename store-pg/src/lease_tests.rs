//! The lease against a real PostgreSQL 15: one holder at a time, the holder named, the lease
//! freed when the holder's session ends.

use super::lease::{lock_key, PgLease};
use super::PgOptions;
use coldaisle_testkit::postgres::Postgres;

fn options(pg: &Postgres) -> PgOptions {
    PgOptions {
        url: pg.url("leases"),
        password: Some(Postgres::PASSWORD.into()),
        ca_file: None,
    }
}

#[tokio::test]
async fn one_holder_at_a_time_named_and_freed_when_its_session_ends() {
    let pg = Postgres::start().expect("postgres");
    pg.create_database("leases").expect("create database");
    let options = options(&pg);
    let mut first = PgLease::connect(&options, "ams", "collector-a")
        .await
        .expect("connect a");
    let mut second = PgLease::connect(&options, "ams", "collector-b")
        .await
        .expect("connect b");
    let mut other = PgLease::connect(&options, "fra", "collector-c")
        .await
        .expect("connect c");
    assert_eq!(second.holder().await.expect("holder"), None);
    assert!(first.try_acquire().await.expect("a tries"));
    assert!(
        first.try_acquire().await.expect("a again"),
        "re-asking keeps it"
    );
    assert!(!second.try_acquire().await.expect("b tries"), "held by a");
    assert!(
        other.try_acquire().await.expect("c tries"),
        "another lease is free"
    );
    assert!(first.holds().await.expect("a holds"));
    assert!(!second.holds().await.expect("b holds"));
    assert_eq!(
        second.holder().await.expect("holder"),
        Some("collector-a".to_string())
    );
    drop(first);
    let mut taken = false;
    for _ in 0..50 {
        if second.try_acquire().await.expect("b tries again") {
            taken = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(taken, "the lease is free once its holder's session ended");
    assert_eq!(
        other.holder().await.expect("holder"),
        Some("collector-c".to_string()),
        "each lease has its own holder"
    );
    assert_eq!(
        second.holder().await.expect("holder"),
        Some("collector-b".to_string())
    );
}

#[test]
fn lock_keys_are_stable_and_differ_per_name() {
    assert_eq!(lock_key("ams"), lock_key("ams"));
    assert_ne!(lock_key("ams"), lock_key("fra"));
    let (high, low) = lock_key("ams");
    assert!((0..=i64::from(u32::MAX)).contains(&high));
    assert!((0..=i64::from(u32::MAX)).contains(&low));
}
