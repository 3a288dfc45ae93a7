//! Collectors sharing one PostgreSQL store (`[cluster]`): one is active per lease, the others
//! stand by.
//!
//! - **Active** (holds the lease, [`coldaisle_store_pg::PgLease`]): runs ingest (subscribes,
//!   stores, acks), the notifier and compaction, as a lone collector does. It checks the lease
//!   every `check_every`; when a check fails (the database ended its session, or the session
//!   broke) it **exits** at once ([`LEASE_LOST_EXIT`]): another collector may already be
//!   active, and a process that stopped is the only one sure to send no page and no ack.
//!   systemd restarts it, and it comes back as a standby.
//! - **Standby**: no MQTT connection, no pages, no compaction; it serves the read API from a
//!   view refreshed from the database every `refresh_every`, and tries the lease every
//!   `check_every`. On taking it, it catches its view up from its refresh cursor (the records,
//!   actions, ledgers and silences the old active committed since the standby's last
//!   refresh) before it starts ingest and the notifier, so a takeover costs what was written
//!   since the last refresh, not the history; a full rebuild when there is no valid cursor
//!   (no refresh yet, or a gap).
//! - **Refresh** ([`follow`]): incremental. It reads only the records, operator actions and
//!   agent ledgers written since the last refresh (by ingest id) and applies them under the
//!   write lock, page by page; its cost follows what was written, not the history. A full
//!   rebuild happens at the first refresh and on a gap (the database's
//!   settled id is behind the cursor: a restored or replaced database). The
//!   notifier's queue and sent ledger are in the database (tree `notify`), so it neither pages
//!   again what the old active paged nor drops what it queued.
//! - **Partitions**: collectors with different leases own different `sites` (the top-level
//!   list: only those sites are subscribed to, see `daemon::run_ingest`). An active
//!   collector of a partition also refreshes its view every `refresh_every`, so its read API
//!   shows the whole fleet's stored records, and operator actions taken on another partition's
//!   collector reach the incidents' owner at its next refresh.
//!
//! The role and the holder are shown on `/api/v1/stats` ([`ClusterView`]).

pub mod follow;

use crate::state::SharedState;
use coldaisle_config::cluster::ClusterConfig;
use coldaisle_config::CollectorConfig;
use coldaisle_store::KvStore;
use coldaisle_store_pg::{PgLease, PgOptions, TailStep};
use follow::Follower;
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

/// The exit code of an active collector that lost its lease (systemd restarts it).
pub const LEASE_LOST_EXIT: i32 = 75;

/// This collector's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Holds the lease: ingests, acks and pages.
    Active,
    /// Waits for the lease; serves the read API from the database.
    Standby,
}

/// What `/api/v1/stats` shows under `cluster`.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    /// The lease's name.
    pub lease: String,
    /// This collector's id.
    pub collector: String,
    /// This collector's role.
    pub role: Role,
    /// Who holds the lease (a collector id), as last seen.
    pub holder: Option<String>,
    /// The sites this collector's partition owns (empty: all).
    pub sites: Vec<String>,
    /// Milliseconds from taking the lease to ingest starting (state rebuilt), once active.
    pub takeover_ms: Option<u64>,
    /// When the read view was last brought up to date from the database.
    pub refreshed_at: Option<coldaisle_core::Timestamp>,
    /// What the last refresh did.
    pub last_refresh: Option<LastRefresh>,
}

/// One refresh, as shown on `/api/v1/stats`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LastRefresh {
    /// A full rebuild (first refresh, gap), else only the changes.
    pub full: bool,
    /// Changes read (records, actions, ledgers); 0 for a full rebuild.
    pub changes: u64,
    /// Its duration.
    pub ms: u64,
}

/// The refresh's connection and cursor, shared by the refresh tasks one after another.
type SharedFollower = Arc<tokio::sync::Mutex<Option<Follower>>>;

/// The shared, live [`ClusterView`].
pub type ClusterStatus = Arc<std::sync::RwLock<ClusterView>>;

/// Refuses every request but `GET`/`HEAD` on a standby with `503` and the lease holder: the
/// standby's state is a periodic copy of the database and the active collector of a failover
/// pair does not refresh (it reads operator actions and silences only when it rebuilds), so an
/// action taken here would be stored but not acted on (pages would go on). Not clustered (`None`) or active: passes.
pub async fn standby_refuses_writes(
    axum::extract::State(status): axum::extract::State<Option<ClusterStatus>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let reads = matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    if let (false, Some(status)) = (reads, &status) {
        let view = status.read().map(|v| v.clone()).ok();
        if let Some(view) = view.filter(|v| v.role == Role::Standby) {
            let holder = view.holder.as_deref().unwrap_or("unknown");
            return crate::http::ApiError {
                status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
                message: format!(
                    "collector {} is a standby of lease {}: send operator actions to the active \
                     collector ({holder})",
                    view.collector, view.lease
                ),
            }
            .into_response();
        }
    }
    next.run(request).await
}

/// Work that runs only while active (ingest), started on taking the lease.
pub type ActiveWork = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Waits until `active` is true (at once when there is no cluster); `false` if `shutdown`
/// came first.
pub async fn until_active(
    active: Option<watch::Receiver<bool>>,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let Some(mut active) = active else {
        return true;
    };
    tokio::select! {
        r = active.wait_for(|a| *a) => r.is_ok(),
        _ = shutdown.wait_for(|s| *s) => false,
    }
}

/// The database options of `config`'s `[store]` (validated at load: postgres with a url).
pub fn pg_options(config: &CollectorConfig) -> anyhow::Result<PgOptions> {
    use anyhow::Context as _;
    Ok(PgOptions {
        url: config
            .raw
            .store
            .url
            .clone()
            .context("[cluster] needs [store] url")?,
        password: config
            .store_password
            .as_ref()
            .map(|s| s.expose().to_string()),
        ca_file: config.raw.store.ca_file.clone(),
    })
}

/// A clustered collector's lease loop (one task).
pub struct Member {
    /// The whole config (the rebuild needs its rules).
    pub config: CollectorConfig,
    /// Its `[cluster]` section.
    pub cluster: ClusterConfig,
    /// The lease session (reconnected when it breaks while standing by).
    pub lease: PgLease,
    /// The store the view is rebuilt from.
    pub kv: Arc<dyn KvStore>,
    /// The state the API reads and ingest writes.
    pub state: SharedState,
    /// The notifier's silences: a refresh takes those other collectors added.
    pub silences: crate::notifier::SilenceBook,
    /// The role shown on the API.
    pub status: ClusterStatus,
    /// Set once active: the notifier and compaction wait for it.
    pub active: watch::Sender<bool>,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl Member {
    /// Stands by until the lease is taken (unless `held` already), then runs `work` and
    /// watches the lease until `shutdown`. Exits the process if the lease is lost.
    pub async fn run(mut self, held: bool, work: ActiveWork, mut shutdown: watch::Receiver<bool>) {
        let mut last_refresh = Instant::now();
        // A rebuild in progress runs beside the lease loop (see the active loop below).
        let mut refreshing: Option<tokio::task::JoinHandle<()>> = None;
        let follower: SharedFollower = Arc::default();
        if !held {
            loop {
                match self.lease.try_acquire().await {
                    Ok(true) => break,
                    Ok(false) => self.see_holder().await,
                    Err(e) => {
                        tracing::warn!(error = %e, "lease check failed; reconnecting");
                        self.reconnect().await;
                    }
                }
                let idle = refreshing.as_ref().is_none_or(|r| r.is_finished());
                if idle && last_refresh.elapsed() >= self.cluster.refresh_every {
                    refreshing = Some(tokio::spawn(self.refresh(follower.clone(), false)));
                    last_refresh = Instant::now();
                }
                tokio::select! {
                    _ = tokio::time::sleep(self.cluster.check_every) => {}
                    _ = shutdown.wait_for(|s| *s) => return,
                }
            }
            let taken = Instant::now();
            // A standby rebuild still running may have read the database before the old
            // active's last commit: it must not replace the takeover's rebuild.
            if let Some(stale) = refreshing.take() {
                stale.abort();
                let _ = stale.await;
            }
            tracing::warn!(lease = %self.cluster.lease, "lease taken: this collector is active; catching up from the database");
            // Catch up from the standby's cursor: only what the old active committed since
            // the last refresh (a full rebuild if there was none yet, or on a gap). The lease
            // is checked meanwhile, which keeps its session busy (the database ends a session
            // idle for 10 s, and a rebuild of a large store takes longer).
            let mut rebuild = tokio::spawn(self.refresh(follower.clone(), false));
            loop {
                tokio::select! {
                    _ = &mut rebuild => break,
                    _ = tokio::time::sleep(self.cluster.check_every) => self.check_held().await,
                }
            }
            let took = u64::try_from(taken.elapsed().as_millis()).unwrap_or(u64::MAX);
            if let Ok(mut view) = self.status.write() {
                view.takeover_ms = Some(took);
            }
            let full = self
                .status
                .read()
                .ok()
                .and_then(|v| v.last_refresh.map(|r| r.full));
            tracing::warn!(lease = %self.cluster.lease, takeover_ms = took, full_rebuild = ?full, "took over: starting ingest and the notifier");
        }
        self.become_active();
        let mut work = tokio::spawn(work());
        let partition = !self.config.raw.sites.is_empty();
        loop {
            let stopping = tokio::select! {
                _ = &mut work => return,
                _ = tokio::time::sleep(self.cluster.check_every) => false,
                _ = shutdown.wait_for(|s| *s) => true,
            };
            if stopping {
                // Ingest watches the same shutdown and ends by itself.
                let _ = work.await;
                return;
            }
            self.check_held().await;
            // The rebuild runs beside this loop: the lease session must not stay idle for
            // as long as a rebuild of a large store takes (the database would end it).
            let idle = refreshing.as_ref().is_none_or(|r| r.is_finished());
            if partition && idle && last_refresh.elapsed() >= self.cluster.refresh_every {
                refreshing = Some(tokio::spawn(self.refresh(follower.clone(), true)));
                last_refresh = Instant::now();
            }
        }
    }

    /// Asks the database whether this collector still holds the lease; exits if not.
    async fn check_held(&mut self) {
        match self.lease.holds().await {
            Ok(true) => {}
            Ok(false) => lost(&self.cluster.lease, "the database no longer grants it"),
            Err(e) => lost(&self.cluster.lease, &e.to_string()),
        }
    }

    fn become_active(&mut self) {
        if let Ok(mut view) = self.status.write() {
            view.role = Role::Active;
            view.holder = Some(self.config.raw.collector_id.clone());
        }
        let _ = self.active.send(true);
    }

    /// Records who holds the lease now.
    async fn see_holder(&mut self) {
        let holder = self.lease.holder().await.ok().flatten();
        if let Ok(mut view) = self.status.write() {
            view.holder = holder;
        }
    }

    /// A new lease session after the old one broke (waits `check_every` between attempts is
    /// the caller's loop).
    async fn reconnect(&mut self) {
        let options = match pg_options(&self.config) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "cannot rebuild the lease session");
                return;
            }
        };
        match PgLease::connect(&options, &self.cluster.lease, &self.config.raw.collector_id).await {
            Ok(lease) => self.lease = lease,
            Err(e) => tracing::warn!(error = %e, "lease session not reconnected yet"),
        }
    }

    /// Brings the view up to date: the changes since the last refresh, or a full rebuild
    /// (the first refresh, or a gap). `active`: an active partition, whose ingest
    /// applies its own sites' records (left out here) and goes on meanwhile (a full rebuild
    /// then holds the write lock throughout, so no batch is missed).
    fn refresh(
        &self,
        follower: SharedFollower,
        active: bool,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (config, kv) = (self.config.clone(), self.kv.clone());
        let (state, status) = (self.state.clone(), self.status.clone());
        let silences = self.silences.clone();
        async move {
            let started = Instant::now();
            let mut slot = follower.lock_owned().await;
            if slot.is_none() {
                let opened = match pg_options(&config) {
                    Ok(options) => tokio::task::spawn_blocking(move || Follower::open(options))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.map_err(|e| e.to_string())),
                    Err(e) => Err(e.to_string()),
                };
                match opened {
                    Ok(f) => *slot = Some(f),
                    Err(error) => {
                        tracing::warn!(%error, "cannot open the refresh connection; keeping the old view");
                        return;
                    }
                }
            }
            let Some(f) = slot.as_mut() else { return };
            let Some(settled) = settled_id(&f.store()).await else {
                return;
            };
            let changes = match f.plan(settled) {
                TailStep::Rebuild => {
                    if !rebuild(config, kv, state, active).await {
                        return;
                    }
                    reload_silences(&silences).await;
                    match settled_id(&f.store()).await {
                        Some(after) => f.rebuilt(settled, after),
                        None => f.reset(),
                    }
                    None
                }
                TailStep::UpToDate => Some(0),
                TailStep::Read { after, upto } => {
                    let own = active.then(|| config.raw.sites.clone());
                    let target = Target {
                        state: &state,
                        silences: &silences,
                        own_sites: own.as_deref(),
                    };
                    match apply_changes(f, target, after, upto).await {
                        Some(n) => Some(n),
                        None => return,
                    }
                }
            };
            let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            if let Ok(mut view) = status.write() {
                view.refreshed_at = Some(coldaisle_core::Timestamp::now());
                view.last_refresh = Some(LastRefresh {
                    full: changes.is_none(),
                    changes: changes.unwrap_or(0),
                    ms,
                });
            }
        }
    }
}

/// The database's settled ingest id, read on a blocking thread (`None`, logged, on failure).
async fn settled_id(store: &Arc<coldaisle_store_pg::PgStore>) -> Option<u64> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || store.settled_ingest_id()).await {
        Ok(Ok(id)) => Some(id),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "reading the settled ingest id failed; keeping the view");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "refresh task failed");
            None
        }
    }
}

/// Reads the changes with `after < id <= upto` page by page and applies each under the write
/// lock (held for the apply only). Returns how many changes were read, `None` (logged) if a
/// read failed: the cursor stays after the last page applied.
async fn apply_changes(
    f: &mut Follower,
    target: Target<'_>,
    mut after: u64,
    upto: u64,
) -> Option<u64> {
    let Target {
        state,
        silences,
        own_sites,
    } = target;
    let mut total = follow::Applied::default();
    let mut read = 0u64;
    while after < upto {
        let store = f.store();
        let page =
            tokio::task::spawn_blocking(move || follow::read_page(&store, after, upto)).await;
        let (page, mut delta) = match page {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, after, upto, "reading changes failed; retrying at the next refresh");
                return None;
            }
            Err(e) => {
                tracing::error!(error = %e, "refresh task failed");
                return None;
            }
        };
        read += delta.len();
        let changed = std::mem::take(&mut delta.silences);
        if !changed.is_empty() {
            match silences.merge(changed) {
                Ok(n) => tracing::info!(silences = n, "silences added elsewhere taken"),
                Err(e) => {
                    tracing::warn!(error = %e, "taking changed silences failed; retrying at the next refresh");
                    return None;
                }
            }
        }
        let applied = {
            let mut current = state.write().await;
            follow::apply(&mut current, delta, own_sites, f.overlap_until())
        };
        total.records += applied.records;
        total.skipped += applied.skipped;
        total.actions += applied.actions;
        total.ledgers += applied.ledgers;
        f.advance(&page);
        if page.end <= after {
            break;
        }
        after = page.end;
    }
    tracing::debug!(
        upto,
        records = total.records,
        skipped = total.skipped,
        actions = total.actions,
        ledgers = total.ledgers,
        "view refreshed from the changes"
    );
    Some(read)
}

/// Where a refresh applies changes.
struct Target<'a> {
    /// The view.
    state: &'a SharedState,
    /// The notifier's silences.
    silences: &'a crate::notifier::SilenceBook,
    /// An active partition's own sites, left to its ingest.
    own_sites: Option<&'a [String]>,
}

/// Reads the silence book again whole, after a full rebuild (logged on failure: the book
/// keeps what it had, and the next full rebuild tries again).
async fn reload_silences(silences: &crate::notifier::SilenceBook) {
    let book = silences.clone();
    match tokio::task::spawn_blocking(move || book.reload()).await {
        Ok(Ok(n)) => tracing::debug!(silences = n, "silences read again"),
        Ok(Err(e)) => tracing::warn!(error = %e, "reading the silences again failed"),
        Err(e) => tracing::error!(error = %e, "silence reload task failed"),
    }
}

/// Rebuilds the view from everything stored and swaps it in; `false` (logged) on failure.
/// `locked`: hold the state's write lock meanwhile, so a batch ingested during the rebuild is
/// not missed (an active collector); a standby ingests nothing and keeps serving the old view
/// meanwhile.
async fn rebuild(
    config: CollectorConfig,
    kv: Arc<dyn KvStore>,
    state: SharedState,
    locked: bool,
) -> bool {
    let guard = if locked {
        Some(state.clone().write_owned().await)
    } else {
        None
    };
    let loaded = tokio::task::spawn_blocking(move || crate::daemon::load_state(&config, &kv)).await;
    let mut loaded = match loaded {
        Ok(Ok((s, _))) => s,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "rebuilding the view from the database failed; keeping the old one");
            return false;
        }
        Err(e) => {
            tracing::error!(error = %e, "rebuild task failed");
            return false;
        }
    };
    let mut current = match guard {
        Some(g) => g,
        None => state.write_owned().await,
    };
    loaded.stats = current.stats.clone();
    *current = loaded;
    true
}

/// Whether a collector owning `sites` (empty: all) ingests `site`.
pub fn owns(sites: &[String], site: &str) -> bool {
    sites.is_empty() || sites.iter().any(|s| s == site)
}

/// Gives up: the lease is gone, so another collector may be active.
fn lost(lease: &str, why: &str) -> ! {
    tracing::error!(%lease, reason = %why, "lease lost: exiting so that only one collector ingests and pages (restart to stand by)");
    std::process::exit(LEASE_LOST_EXIT)
}

/// The view shown before the first lease attempt.
pub fn initial_view(config: &CollectorConfig, cluster: &ClusterConfig) -> ClusterView {
    ClusterView {
        lease: cluster.lease.clone(),
        collector: config.raw.collector_id.clone(),
        role: Role::Standby,
        holder: None,
        sites: config.raw.sites.clone(),
        takeover_ms: None,
        refreshed_at: None,
        last_refresh: None,
    }
}

#[cfg(test)]
mod tests {
    use super::owns;

    #[test]
    fn a_partition_owns_only_its_sites_and_no_list_owns_all() {
        let sites = vec!["s1".to_string(), "s2".to_string()];
        assert!(owns(&sites, "s1"));
        assert!(owns(&sites, "s2"));
        assert!(!owns(&sites, "s3"));
        assert!(!owns(&sites, "s"));
        assert!(owns(&[], "anything"));
    }
}
