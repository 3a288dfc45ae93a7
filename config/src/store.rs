//! The collector's `[store]` section: which storage backend holds its data.
//!
//! ```toml
//! [store]
//! kind = "postgres"                       # or "sled" (the default: `state_dir/store`)
//! url = "postgres://coldaisle@db.example:5432/coldaisle"
//! password_file = "/etc/coldaisle/pg-password"
//! ca_file = "/etc/coldaisle/pg-ca.pem"     # optional: TLS required, server verified with it
//! ```
//!
//! For sled, `sled_cache_mb` bounds sled's page cache (default [`DEFAULT_SLED_CACHE_MB`]):
//! without it sled caches up to 1 GiB, and every full read (a rebuild without a checkpoint,
//! compaction, a long report) grows the collector's memory towards that.
//!
//! The password never goes in the URL (it would end up in logs and `Debug` output): a URL
//! with one is refused.

use crate::error::{KeyPath, Problem};
use crate::mqtt::Secret;
use serde::Deserialize;
use std::path::PathBuf;

/// Default bound of the sled page cache, in MiB (BENCHMARKS.md "Collector sled cache").
pub const DEFAULT_SLED_CACHE_MB: u64 = 64;

/// Largest accepted `sled_cache_mb` (64 GiB): a larger value is surely a unit mistake.
const MAX_SLED_CACHE_MB: u64 = 64 * 1024;

/// The storage engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// Embedded sled database in `state_dir/store` (no server needed).
    #[default]
    Sled,
    /// A PostgreSQL database (shared, replicated and backed up by the operator).
    Postgres,
}

/// `[store]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The engine.
    #[serde(default)]
    pub kind: StoreKind,
    /// PostgreSQL URL (`postgres://user@host:port/database`), without password.
    #[serde(default)]
    pub url: Option<String>,
    /// File whose first line is the PostgreSQL password, read at start.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// PEM CA certificate(s) of the PostgreSQL server: when set, TLS is required and the
    /// server's certificate must chain to it and name the URL's host.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Bound of sled's page cache in MiB (sled only); `None` means [`DEFAULT_SLED_CACHE_MB`].
    #[serde(default)]
    pub sled_cache_mb: Option<u64>,
}

impl StoreConfig {
    /// The sled page cache bound in bytes: `sled_cache_mb` or its default.
    pub fn sled_cache_bytes(&self) -> u64 {
        self.sled_cache_mb.unwrap_or(DEFAULT_SLED_CACHE_MB) * 1024 * 1024
    }

    /// Checks the section and reads the password file; `at` is the section's key path.
    pub fn resolve(&self, at: &KeyPath) -> Result<Option<Secret>, Problem> {
        match self.kind {
            StoreKind::Sled => {
                for (key, set) in [
                    ("url", self.url.is_some()),
                    ("password_file", self.password_file.is_some()),
                    ("ca_file", self.ca_file.is_some()),
                ] {
                    if set {
                        return Err(Problem::new(
                            at.key(key),
                            "only for kind = \"postgres\" (the sled store lives in state_dir)",
                        ));
                    }
                }
                if let Some(mb) = self.sled_cache_mb {
                    if !(1..=MAX_SLED_CACHE_MB).contains(&mb) {
                        return Err(Problem::new(
                            at.key("sled_cache_mb"),
                            format!("must be from 1 to {MAX_SLED_CACHE_MB} (MiB), got {mb}"),
                        ));
                    }
                }
                Ok(None)
            }
            StoreKind::Postgres => {
                if self.sled_cache_mb.is_some() {
                    return Err(Problem::new(
                        at.key("sled_cache_mb"),
                        "only for kind = \"sled\" (PostgreSQL caches in its server)",
                    ));
                }
                let Some(url) = &self.url else {
                    return Err(Problem::new(
                        at.key("url"),
                        "kind = \"postgres\" needs a url, e.g. postgres://coldaisle@db:5432/coldaisle",
                    ));
                };
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err(Problem::new(
                        at.key("url"),
                        "must start with postgres:// or postgresql://",
                    ));
                }
                if url_has_password(url) {
                    return Err(Problem::new(
                        at.key("url"),
                        "must not contain the password: put it in password_file",
                    ));
                }
                if let Some(ca) = &self.ca_file {
                    if !ca.is_file() {
                        return Err(Problem::new(
                            at.key("ca_file"),
                            format!("{} is not a readable file", ca.display()),
                        ));
                    }
                }
                let Some(file) = &self.password_file else {
                    return Ok(None);
                };
                std::fs::read_to_string(file)
                    .map(|text| Some(Secret::from(text.lines().next().unwrap_or(""))))
                    .map_err(|e| {
                        Problem::new(
                            at.key("password_file"),
                            format!("cannot read {}: {e}", file.display()),
                        )
                    })
            }
        }
    }
}

/// True if a `postgres://` URL carries a password (in its userinfo or a `password=` query
/// parameter).
fn url_has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let in_userinfo = authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    let in_query = rest.split_once('?').is_some_and(|(_, query)| {
        query
            .split('&')
            .any(|pair| pair.to_ascii_lowercase().starts_with("password="))
    });
    in_userinfo || in_query
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(toml_text: &str) -> Result<Option<Secret>, String> {
        let config: StoreConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        config
            .resolve(&KeyPath::default().key("store"))
            .map_err(|p| format!("{}: {}", p.path, p.message))
    }

    #[test]
    fn sled_is_the_default_and_takes_no_url() {
        let config: StoreConfig = toml::from_str("").expect("empty");
        assert_eq!(config.kind, StoreKind::Sled);
        let err = resolve("url = \"postgres://h/db\"").expect_err("url for sled");
        assert!(err.contains("store.url"), "{err}");
    }

    #[test]
    fn sled_cache_mb_defaults_to_64_and_is_validated() {
        let config: StoreConfig = toml::from_str("").expect("empty");
        assert_eq!(
            config.sled_cache_bytes(),
            DEFAULT_SLED_CACHE_MB * 1024 * 1024
        );
        assert_eq!(DEFAULT_SLED_CACHE_MB, 64);
        let config: StoreConfig = toml::from_str("sled_cache_mb = 128").expect("a value");
        assert_eq!(config.sled_cache_bytes(), 128 * 1024 * 1024);
        assert_eq!(resolve("sled_cache_mb = 128"), Ok(None));
        for bad in ["sled_cache_mb = 0", "sled_cache_mb = 70000"] {
            let err = resolve(bad).expect_err(bad);
            assert!(err.contains("store.sled_cache_mb"), "{bad}: {err}");
        }
        let err = resolve("sled_cache_mb = \"64MB\"").expect_err("a string");
        assert!(err.contains("sled_cache_mb"), "{err}");
        let err = resolve("kind = \"postgres\"\nurl = \"postgres://h/db\"\nsled_cache_mb = 64")
            .expect_err("sled key for postgres");
        assert!(err.contains("store.sled_cache_mb"), "{err}");
    }

    #[test]
    fn postgres_needs_a_url_without_password_and_reads_the_password_file() {
        let err = resolve("kind = \"postgres\"").expect_err("no url");
        assert!(err.contains("store.url"), "{err}");
        let err = resolve("kind = \"postgres\"\nurl = \"postgres://u:hunter2@h/db\"")
            .expect_err("password in url");
        assert!(
            err.contains("store.url") && err.contains("password_file"),
            "{err}"
        );
        assert!(url_has_password(
            "postgresql://h/db?sslmode=disable&password=x"
        ));
        assert!(!url_has_password("postgres://u@h:5432/db?sslmode=disable"));
        let err = resolve(
            "kind = \"postgres\"\nurl = \"postgres://h/db\"\npassword_file = \"/nonexistent/pw\"",
        )
        .expect_err("unreadable");
        assert!(err.contains("store.password_file"), "{err}");
        let file = std::env::temp_dir().join(format!("coldaisle-store-pw-{}", std::process::id()));
        std::fs::write(&file, "s3cret\n").expect("write");
        let secret = resolve(&format!(
            "kind = \"postgres\"\nurl = \"postgres://u@h/db\"\npassword_file = {:?}",
            file.display().to_string()
        ))
        .expect("valid")
        .expect("a password");
        std::fs::remove_file(&file).ok();
        assert_eq!(secret.expose(), "s3cret", "first line only");
        let err = resolve(
            "kind = \"postgres\"\nurl = \"postgres://u@h/db\"\nca_file = \"/nonexistent/ca.pem\"",
        )
        .expect_err("missing CA file");
        assert!(err.contains("store.ca_file"), "{err}");
        let err = resolve("kind = \"mysql\"").expect_err("unknown kind");
        assert!(err.contains("mysql") || err.contains("variant"), "{err}");
    }
}
