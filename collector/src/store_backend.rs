//! Opens the store the config names (`[store] kind`): sled in `state_dir/store` (the
//! default), or PostgreSQL through `coldaisle-store-pg`. sled's page cache is bounded by
//! `[store] sled_cache_mb` (sled's own default, 1 GiB, would let every full read of the store
//! grow the collector's memory towards it).

use anyhow::Context;
use coldaisle_config::store::StoreKind;
use coldaisle_config::CollectorConfig;
use coldaisle_store::{KvStore, SledStore};
use coldaisle_store_pg::{PgOptions, PgStore};
use std::sync::Arc;

/// The configured backend, opened (PostgreSQL: connected and migrated).
pub fn open(config: &CollectorConfig) -> anyhow::Result<Arc<dyn KvStore>> {
    let raw = &config.raw;
    match raw.store.kind {
        StoreKind::Sled => {
            let dir = raw.state_dir.join("store");
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("creating state directory {}", dir.display()))?;
            let cache_bytes = raw.store.sled_cache_bytes();
            let store = SledStore::open_with_cache(&dir, cache_bytes)
                .with_context(|| format!("opening the store in {}", dir.display()))?;
            tracing::info!(cache_bytes, "store: sled");
            Ok(Arc::new(store))
        }
        StoreKind::Postgres => {
            // Validated at load: `url` is set for kind = "postgres".
            let url = raw.store.url.clone().context("[store] url is missing")?;
            let store = PgStore::open(PgOptions {
                url,
                password: config
                    .store_password
                    .as_ref()
                    .map(|s| s.expose().to_string()),
                ca_file: raw.store.ca_file.clone(),
            })
            .context("opening the PostgreSQL store")?;
            tracing::info!(database = %store.target(), "store: postgres");
            Ok(Arc::new(store))
        }
    }
}
