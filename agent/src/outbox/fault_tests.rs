//! Disk faults: a fault-injecting store ([`FaultyStore`]) and a really full filesystem (a small
//! tmpfs mounted by the test, which needs root).

use super::tests::{location, summary};
use super::*;
use coldaisle_core::{DeviceEvent, EventState, Timestamp};
use coldaisle_store::{FaultyStore, MemoryStore, SledStore, FAIL_ALWAYS};

fn event(n: i64) -> Payload {
    Payload::DeviceEvent(DeviceEvent {
        device: format!("dev{n}"),
        location: location(),
        state: EventState::Raised,
        reason: "x".repeat(200),
        ts: Timestamp(n),
    })
}

/// (seq, payload timestamp) of every record that may be sent.
fn sendable(outbox: &mut Outbox) -> Vec<(u64, i64)> {
    outbox
        .pending_after(0, usize::MAX, usize::MAX)
        .expect("pending")
        .iter()
        .map(|r| {
            let ts = match &r.payload {
                Payload::DeviceEvent(e) => e.ts.0,
                Payload::ReadingSummary(s) => s.from.0,
                _ => -1,
            };
            (r.seq, ts)
        })
        .collect()
}

fn faulty() -> (Arc<FaultyStore>, Outbox) {
    let store = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
    let outbox = Outbox::open(store.clone(), "a1", "s1").expect("open");
    (store, outbox)
}

#[test]
fn a_refused_write_holds_the_readings_and_takes_no_seq() {
    let (store, mut outbox) = faulty();
    assert_eq!(outbox.append(vec![event(1)]).expect("append"), 1..2);
    store.fail_applies(2);
    assert!(outbox.append(vec![event(2), event(3)]).is_err());
    assert!(outbox.append(vec![event(4)]).is_err());
    assert!(outbox.needs_retry());
    assert_eq!(outbox.next_seq(), 2, "no seq taken by a refused write");
    let stats = outbox.stats();
    assert_eq!((stats.write_failures, stats.unwritten), (2, 3));
    assert_eq!(sendable(&mut outbox), vec![(1, 1)]);
    // The disk is back: the held readings come first, in order, then the new one.
    assert_eq!(outbox.append(vec![event(5)]).expect("append"), 2..6);
    assert!(!outbox.needs_retry());
    assert_eq!(outbox.stats().unwritten, 0);
    assert_eq!(
        sendable(&mut outbox),
        vec![(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]
    );
}

#[test]
fn a_failed_flush_keeps_its_seqs_and_sends_nothing_until_durable() {
    let (store, mut outbox) = faulty();
    assert_eq!(outbox.append(vec![event(1)]).expect("append"), 1..2);
    store.fail_flushes(2);
    assert!(outbox.append(vec![event(2), event(3)]).is_err());
    assert_eq!(outbox.next_seq(), 4, "applied seqs stay taken");
    assert!(outbox.needs_retry());
    assert_eq!(
        sendable(&mut outbox),
        vec![(1, 1)],
        "records not flushed are not sent"
    );
    assert!(outbox.retry().is_err());
    assert_eq!(outbox.stats().write_failures, 2);
    assert_eq!(outbox.retry().expect("flush"), 4..4);
    assert!(!outbox.needs_retry());
    assert_eq!(sendable(&mut outbox), vec![(1, 1), (2, 2), (3, 3)]);
    // No seq is reused after a failed flush.
    assert_eq!(outbox.append(vec![event(4)]).expect("append"), 4..5);
}

#[test]
fn the_in_memory_hold_is_bounded_summaries_first_and_counted() {
    let store = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
    let mut outbox = Outbox::open(store.clone(), "a1", "s1")
        .expect("open")
        .with_unwritten_limit(3);
    store.fail_applies(FAIL_ALWAYS);
    assert!(outbox
        .append(vec![summary(1), event(2), summary(3)])
        .is_err());
    assert!(outbox.append(vec![event(4), event(5)]).is_err());
    let stats = outbox.stats();
    assert_eq!((stats.unwritten, stats.unwritten_dropped), (3, 2));
    assert_eq!(stats.write_failures, 2);
    store.fail_applies(0);
    assert_eq!(outbox.retry().expect("retry"), 1..4);
    assert_eq!(sendable(&mut outbox), vec![(1, 2), (2, 4), (3, 5)]);
}

/// Runs `mount`/`umount`; panics with the command's output when it fails.
fn run(command: &str, args: &[&str]) {
    let out = std::process::Command::new(command)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{command} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{command} {args:?} failed (this test mounts a tmpfs and needs root): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Unmounts on drop, also when an assertion failed.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_really_full_filesystem_is_counted_held_and_loses_no_durable_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mount = dir.path().join("small");
    std::fs::create_dir(&mount).expect("mkdir");
    let path = mount.to_str().expect("utf-8 path");
    run("mount", &["-t", "tmpfs", "-o", "size=4m", "tmpfs", path]);
    let _mounted = Mounted(mount.clone());
    // Ballast, deleted later to free space as an operator would. Half the filesystem: sled's
    // reopen after the disk filled writes new 512 KiB segments, and a ballast of one segment
    // was sometimes not room enough (the reopen then failed with ENOSPC).
    let ballast = mount.join("ballast");
    std::fs::write(&ballast, vec![0u8; 2 * 1024 * 1024]).expect("ballast");
    let (durable_last, taken) = {
        let store: Arc<dyn KvStore> =
            Arc::new(SledStore::open(&mount.join("store")).expect("open"));
        let mut outbox = Outbox::open(store, "a1", "s1").expect("open");
        let mut durable_last = 0u64;
        let mut failed = false;
        for n in 0..20_000 {
            let burst: Vec<Payload> = (0..16).map(|i| event(n * 16 + i)).collect();
            match outbox.append(burst) {
                Ok(seqs) => durable_last = seqs.end - 1,
                Err(e) => {
                    assert!(e.to_string().contains("No space left"), "{e}");
                    failed = true;
                    break;
                }
            }
        }
        assert!(failed, "4 MiB of tmpfs never filled up");
        assert!(
            durable_last > 0,
            "nothing was stored before the disk filled"
        );
        // Still full: every retry fails, is counted, and the readings stay held.
        assert!(outbox.needs_retry());
        let before = outbox.stats();
        assert!(outbox.retry().is_err());
        let after = outbox.stats();
        assert_eq!(after.write_failures, before.write_failures + 1);
        assert_eq!(after.unwritten, before.unwritten);
        assert!(after.unwritten > 0 || outbox.next_seq() - 1 > durable_last);
        (durable_last, outbox.next_seq() - 1)
    };
    // Sled keeps refusing after ENOSPC until reopened: free space and reopen (the agent's
    // watchdog restart). Every record that was ever sendable is there, and no seq is reused.
    std::fs::remove_file(&ballast).expect("free space");
    let store: Arc<dyn KvStore> = Arc::new(SledStore::open(&mount.join("store")).expect("reopen"));
    let mut outbox = Outbox::open(store, "a1", "s1").expect("reopen outbox");
    let held = sendable(&mut outbox);
    assert_eq!(held.len() as u64, durable_last, "durable records survive");
    assert!(outbox.next_seq() > durable_last);
    let next = outbox
        .append(vec![event(-1)])
        .expect("append after freeing space");
    assert!(
        next.start > durable_last,
        "seq {} reused; durable up to {durable_last} (taken up to {taken} before)",
        next.start
    );
}
