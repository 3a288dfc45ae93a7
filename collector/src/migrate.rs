//! `coldaisle-collector migrate --from sled:<dir> --to postgres:<url or config>`: copies every
//! tree of a (stopped) collector's sled store into a PostgreSQL store.
//!
//! - **Every tree**: the sled database's own list of trees, so trees added later (checkpoints,
//!   roll-ups) come along without a change here.
//! - **Refuses a non-empty target** (any tree already holding entries) unless `--force`: a
//!   copy into a store in use would mix two collectors' data.
//! - **Idempotent and resumable**: entries are copied in key order, one atomic batch of at
//!   most [`CHUNK`] entries at a time, as upserts. A copy that stopped half-way is finished by
//!   running it again with `--force`: what was copied is written again with the same value,
//!   nothing is duplicated.
//! - **Verified**: at the end each tree's entry count in the target must equal the source's;
//!   a difference (the target held entries of its own) is an error naming the tree.

use coldaisle_store::{KvStore, SledStore, StoreError, WriteBatch};
use std::path::PathBuf;

/// Entries per batch written to the target.
pub const CHUNK: usize = 2048;

/// Why a migration stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The target already holds data and `--force` was not given.
    #[error(
        "the target is not empty (tree `{tree}` has {entries} entries): migrate into an empty \
         database, or pass --force to resume an interrupted copy"
    )]
    NotEmpty {
        /// The first non-empty tree.
        tree: String,
        /// Its entries.
        entries: usize,
    },
    /// Counts differ after the copy.
    #[error("tree `{tree}`: {source_entries} entries in the source, {target_entries} in the target after the copy")]
    Mismatch {
        /// The tree.
        tree: String,
        /// Entries in the source.
        source_entries: usize,
        /// Entries in the target.
        target_entries: usize,
    },
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A `--from`/`--to` argument is not understood.
    #[error("{0}")]
    Usage(String),
}

/// What was copied of one tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeCopy {
    /// The tree.
    pub tree: String,
    /// Entries written (all of the source's).
    pub copied: usize,
    /// Entries in the target afterwards (equal to `copied`: verified).
    pub target: usize,
}

/// `--from sled:<dir>`: the sled store directory (`state_dir/store`).
pub fn parse_from(from: &str) -> Result<PathBuf, MigrateError> {
    match from.strip_prefix("sled:") {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => Err(MigrateError::Usage(format!(
            "--from {from:?}: expected sled:<directory>, e.g. sled:/var/lib/coldaisle-collector/store"
        ))),
    }
}

/// Where `--to postgres:...` points: a URL, or a collector config whose `[store]` names the
/// database (URL, `password_file`, `ca_file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// `postgres:postgres://user@host/db` (password from `$PGPASSWORD`).
    Url(String),
    /// `postgres:/etc/coldaisle/collector.toml`.
    Config(PathBuf),
}

/// Parses `--to`.
pub fn parse_to(to: &str) -> Result<Destination, MigrateError> {
    match to.strip_prefix("postgres:") {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Destination::Url(url.to_string()))
        }
        Some(path) if !path.is_empty() => Ok(Destination::Config(PathBuf::from(path))),
        _ => Err(MigrateError::Usage(format!(
            "--to {to:?}: expected postgres:<url> or postgres:<collector config file>"
        ))),
    }
}

/// Copies every tree of `trees` from `source` to `target` (see the module doc); `progress` is
/// told each tree's result as it completes.
pub fn copy(
    source: &dyn KvStore,
    target: &dyn KvStore,
    trees: &[String],
    force: bool,
    mut progress: impl FnMut(&TreeCopy),
) -> Result<Vec<TreeCopy>, MigrateError> {
    if !force {
        for tree in trees {
            let entries = target.len(tree)?;
            if entries > 0 {
                return Err(MigrateError::NotEmpty {
                    tree: tree.clone(),
                    entries,
                });
            }
        }
    }
    let mut out = Vec::new();
    for tree in trees {
        let mut copied = 0;
        let mut from = Vec::new();
        loop {
            let chunk = source.scan(tree, &from, CHUNK)?;
            let Some((last, _)) = chunk.last() else { break };
            // The smallest key after `last`.
            from = last.clone();
            from.push(0);
            copied += chunk.len();
            let mut batch = WriteBatch::default();
            for (key, value) in chunk {
                batch.insert(key, value);
            }
            target.apply(tree, batch)?;
        }
        target.flush()?;
        let target_entries = target.len(tree)?;
        if target_entries != copied {
            return Err(MigrateError::Mismatch {
                tree: tree.clone(),
                source_entries: copied,
                target_entries,
            });
        }
        let done = TreeCopy {
            tree: tree.clone(),
            copied,
            target: target_entries,
        };
        progress(&done);
        out.push(done);
    }
    Ok(out)
}

/// The command: opens both stores, copies, prints one line per tree.
pub fn run(from: &str, to: &str, force: bool) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let dir = parse_from(from)?;
    let options = match parse_to(to)? {
        Destination::Url(url) => coldaisle_store_pg::PgOptions {
            url,
            password: std::env::var("PGPASSWORD").ok(),
            ca_file: None,
        },
        Destination::Config(path) => {
            let config = coldaisle_config::CollectorConfig::load(&path)?;
            crate::cluster::pg_options(&config).with_context(|| {
                format!("{}: [store] must be kind = \"postgres\"", path.display())
            })?
        }
    };
    if !dir.join("conf").exists() && !dir.join("db").exists() {
        anyhow::bail!(
            "{} holds no sled store (expected the collector's state_dir/store)",
            dir.display()
        );
    }
    let source = SledStore::open(&dir)
        .with_context(|| format!("opening {} (stop the collector first)", dir.display()))?;
    let target = coldaisle_store_pg::PgStore::open(options).context("opening the target")?;
    let trees = source.tree_names();
    let copies = copy(&source, &target, &trees, force, |t| {
        println!("{}: {} entries copied and verified", t.tree, t.copied);
    })?;
    let total: usize = copies.iter().map(|t| t.copied).sum();
    println!(
        "migrated {} trees, {total} entries, from {} to {}",
        copies.len(),
        dir.display(),
        target.target()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldaisle_store::MemoryStore;

    fn filled() -> (MemoryStore, Vec<String>) {
        let source = MemoryStore::new();
        for (tree, n) in [("records", 5000u64), ("notify", 3), ("empty", 0)] {
            let mut batch = WriteBatch::default();
            for i in 0..n {
                // Records keys as the collector writes them (agent, 0x00, seq): PostgreSQL
                // stores that tree as a table by (agent, seq).
                let key = if tree == "records" {
                    [b"agent-1\x00".as_slice(), &i.to_be_bytes()].concat()
                } else {
                    i.to_be_bytes().to_vec()
                };
                batch.insert(key, format!("{tree}{i}").into_bytes());
            }
            if !batch.is_empty() {
                source.apply(tree, batch).expect("fill");
            }
        }
        let trees = vec!["empty".into(), "notify".into(), "records".into()];
        (source, trees)
    }

    #[test]
    fn copies_every_tree_in_chunks_and_verifies_counts() {
        let (source, trees) = filled();
        let target = MemoryStore::new();
        let mut seen = Vec::new();
        let copies = copy(&source, &target, &trees, false, |t| {
            seen.push(t.tree.clone())
        })
        .expect("copy");
        assert_eq!(seen, trees);
        assert_eq!(
            copies.iter().map(|c| c.copied).collect::<Vec<_>>(),
            vec![0, 3, 5000]
        );
        for tree in &trees {
            assert_eq!(
                target.scan(tree, b"", usize::MAX).expect("target"),
                source.scan(tree, b"", usize::MAX).expect("source"),
                "{tree} identical"
            );
        }
    }

    #[test]
    fn refuses_a_non_empty_target_unless_forced_and_a_rerun_changes_nothing() {
        let (source, trees) = filled();
        let target = MemoryStore::new();
        // An interrupted copy: part of `records` is there.
        let mut part = WriteBatch::default();
        for (k, v) in source.scan("records", b"", 100).expect("scan") {
            part.insert(k, v);
        }
        target.apply("records", part).expect("part");
        let err = copy(&source, &target, &trees, false, |_| {}).expect_err("refused");
        assert!(
            matches!(&err, MigrateError::NotEmpty { tree, entries: 100 } if tree == "records"),
            "{err}"
        );
        assert_eq!(target.len("notify").expect("len"), 0, "nothing written");
        copy(&source, &target, &trees, true, |_| {}).expect("resumed");
        copy(&source, &target, &trees, true, |_| {}).expect("again");
        assert_eq!(target.len("records").expect("len"), 5000);
        assert_eq!(
            target.scan("records", b"", usize::MAX).expect("target"),
            source.scan("records", b"", usize::MAX).expect("source")
        );
    }

    #[test]
    fn a_target_with_entries_of_its_own_fails_the_count_check() {
        let (source, trees) = filled();
        let target = MemoryStore::new();
        let mut own = WriteBatch::default();
        own.insert(b"zz-not-in-the-source".to_vec(), b"x".to_vec());
        target.apply("notify", own).expect("own");
        let err = copy(&source, &target, &trees, true, |_| {}).expect_err("mismatch");
        assert!(
            matches!(&err, MigrateError::Mismatch { tree, source_entries: 3, target_entries: 4 } if tree == "notify"),
            "{err}"
        );
    }

    /// The command end to end: a sled store on disk into the kit's PostgreSQL 15, named by a
    /// collector config; a second run is refused, a forced one changes nothing.
    #[test]
    fn migrates_a_sled_directory_into_postgres_named_by_a_config() {
        let pg = coldaisle_testkit::postgres::Postgres::start().expect("postgres");
        pg.create_database("migrated").expect("database");
        let dir = tempfile::tempdir().expect("tempdir");
        let sled_dir = dir.path().join("store");
        let (source, trees) = filled();
        {
            let sled = SledStore::open(&sled_dir).expect("sled");
            copy(&source, &sled, &trees[1..], false, |_| {}).expect("fill sled");
        }
        let config = dir.path().join("collector.toml");
        std::fs::write(
            &config,
            format!(
                "collector_id = \"c\"\nstate_dir = \"{}\"\n[mqtt]\nhost = \"127.0.0.1\"\n\
                 [store]\nkind = \"postgres\"\nurl = \"{}\"\npassword_file = \"{}\"\n",
                dir.path().display(),
                pg.url("migrated"),
                pg.password_file().display()
            ),
        )
        .expect("config");
        let from = format!("sled:{}", sled_dir.display());
        let to = format!("postgres:{}", config.display());
        run(&from, &to, false).expect("migrate");
        let count = |tree: &str| {
            pg.psql(
                "migrated",
                &format!("SELECT count(*) FROM kv WHERE tree = '{tree}'"),
            )
            .expect("count")
        };
        assert_eq!(count("notify"), "3");
        assert_eq!(count("records"), "0", "records live in their own table");
        assert_eq!(
            pg.psql("migrated", "SELECT count(*) FROM records")
                .expect("records"),
            "5000"
        );
        let again = run(&from, &to, false).expect_err("refused").to_string();
        assert!(again.contains("not empty"), "{again}");
        run(&from, &to, true).expect("forced rerun");
        assert_eq!(
            pg.psql("migrated", "SELECT count(*) FROM records")
                .expect("records"),
            "5000"
        );
    }

    #[test]
    fn arguments_name_the_expected_forms() {
        assert_eq!(
            parse_from("sled:/var/x").expect("from"),
            PathBuf::from("/var/x")
        );
        assert!(parse_from("/var/x").is_err());
        assert_eq!(
            parse_to("postgres:postgres://u@db/c").expect("url"),
            Destination::Url("postgres://u@db/c".into())
        );
        assert_eq!(
            parse_to("postgres:/etc/c.toml").expect("config"),
            Destination::Config(PathBuf::from("/etc/c.toml"))
        );
        let err = parse_to("mysql://x").expect_err("refused").to_string();
        assert!(err.contains("postgres:<url>"), "{err}");
    }
}
