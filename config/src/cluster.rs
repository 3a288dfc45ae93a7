//! The collector's `[cluster]` section: collectors that share one PostgreSQL store and take
//! turns (failover), or split the fleet's sites between them (partitions).
//!
//! ```toml
//! sites = ["ams1", "ams2"]   # top level: the sites this collector (its partition) owns
//! [store]
//! kind = "postgres"
//! url = "postgres://coldaisle@db:5432/coldaisle"
//! [cluster]
//! lease = "ams"            # collectors with the same lease are one active + standbys
//! check_every = "1s"       # how often the lease is tried (standby) or checked (active)
//! refresh_every = "10s"    # how often the read view is rebuilt from the database
//! ```
//!
//! Collectors with the same `lease` must own the same `sites`; collectors with different
//! leases own disjoint ones (each site's batches are stored by exactly one active collector).

use crate::error::{KeyPath, Problem};
use serde::Deserialize;
use std::time::Duration;

/// `[cluster]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The lease's name: one collector at a time holds it and is active (ingest, pages).
    pub lease: String,
    /// How often a standby tries to take the lease and an active collector checks it still
    /// holds it (default 1 s).
    #[serde(default = "default_check_every", with = "humantime_serde")]
    pub check_every: Duration,
    /// How often the read view (incidents, problems, agents) is rebuilt from the database:
    /// on a standby, and on an active collector of a partition for the other partitions'
    /// sites (default 10 s).
    #[serde(default = "default_refresh_every", with = "humantime_serde")]
    pub refresh_every: Duration,
}

/// The longest `check_every`: the lease session must run a query well within the 10 s the
/// database lets it stay idle (`coldaisle_store_pg::lease::IDLE_LIMIT`).
pub const MAX_CHECK_EVERY: Duration = Duration::from_secs(5);

fn default_check_every() -> Duration {
    Duration::from_secs(1)
}

fn default_refresh_every() -> Duration {
    Duration::from_secs(10)
}

/// Checks `[cluster]`: a lease name, non-zero periods, and a PostgreSQL store (a lease on a
/// local sled directory would protect nothing).
pub fn validate(
    cluster: &ClusterConfig,
    store: &crate::store::StoreConfig,
    at: &KeyPath,
) -> Result<(), Problem> {
    if cluster.lease.is_empty() || cluster.lease.len() > 63 {
        return Err(Problem::new(
            at.key("lease"),
            "must be 1 to 63 characters (it names the lease in the database)",
        ));
    }
    for (key, value) in [
        ("check_every", cluster.check_every),
        ("refresh_every", cluster.refresh_every),
    ] {
        if value.is_zero() {
            return Err(Problem::new(at.key(key), "must be above zero"));
        }
    }
    if cluster.check_every > MAX_CHECK_EVERY {
        return Err(Problem::new(
            at.key("check_every"),
            "must be at most 5s: the database ends a lease session idle for 10 s",
        ));
    }
    if store.kind != crate::store::StoreKind::Postgres {
        return Err(Problem::new(
            at.clone(),
            "needs [store] kind = \"postgres\": collectors share the database and its lease",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::CollectorConfig;
    use std::path::Path;
    use std::time::Duration;

    const BASE: &str = "collector_id = \"c1\"\nstate_dir = \"/tmp/x\"\nsites = [\"ams1\"]\n\
                        [mqtt]\nhost = \"127.0.0.1\"\n";
    const PG: &str = "[store]\nkind = \"postgres\"\nurl = \"postgres://c@db/c\"\n";

    fn load(extra: &str) -> Result<CollectorConfig, String> {
        CollectorConfig::from_str(&format!("{BASE}{extra}"), Path::new("collector.toml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_cluster_needs_postgres_a_lease_name_and_periods_above_zero() {
        let c = load(&format!("{PG}[cluster]\nlease = \"ams\"\n")).expect("valid");
        let cluster = c.raw.cluster.expect("cluster section");
        assert_eq!(cluster.lease, "ams");
        assert_eq!(cluster.check_every, Duration::from_secs(1));
        assert_eq!(cluster.refresh_every, Duration::from_secs(10));
        assert!(load("").expect("no cluster").raw.cluster.is_none());
        let err = load("[cluster]\nlease = \"ams\"\n")
            .err()
            .unwrap_or_default();
        assert!(err.contains("cluster") && err.contains("postgres"), "{err}");
        let err = load(&format!("{PG}[cluster]\nlease = \"\"\n"))
            .err()
            .unwrap_or_default();
        assert!(err.contains("cluster.lease"), "{err}");
        let err = load(&format!(
            "{PG}[cluster]\nlease = \"ams\"\ncheck_every = \"0s\"\n"
        ))
        .err()
        .unwrap_or_default();
        assert!(err.contains("cluster.check_every"), "{err}");
        let err = load(&format!(
            "{PG}[cluster]\nlease = \"ams\"\ncheck_every = \"6s\"\n"
        ))
        .err()
        .unwrap_or_default();
        assert!(err.contains("at most 5s"), "{err}");
    }
}
