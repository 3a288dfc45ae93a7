//! The notifier: turns the analysis into pages through a durable queue.
//!
//! Every `interval` it asks [`crate::notify_plan::plan`] what to send, stores the resulting jobs
//! and sent-ledger entries in one atomic, flushed batch (tree `notify`), then delivers due jobs
//! through their [`Pager`]s. A failed delivery stays queued with `attempts + 1` and a
//! `next_attempt` from [`retry_delay`] (exponential, capped, at least the receiver's
//! `Retry-After`); a permanent failure is dropped and logged. After a restart the ledger says
//! what was already planned, so nothing is triggered twice, and queued jobs resume.
//!
//! Keys of tree `notify`: `q` + job id (u64 BE) → [`Job`]; `s` + receiver + `0x00` + subject
//! key → [`Sent`]; `n` + subject key + `0x00` + job id + index (u32 BE) → delivered
//! notification record (shown on chronicles). Tree `silences`: id (u64 BE) → [`Silence`].

use crate::actions::ActionRecord;
use crate::notify_plan::{
    plan, retry_delay, NoiseRules, Notification, Phase, Route, Sent, Silence,
};
use crate::pagers::{DeliveryError, Pager};
use crate::report::incident_time;
use crate::state::SharedState;
use coldaisle_config::notify::NotifyConfig;
use coldaisle_core::{Category, Severity, Timestamp};
use coldaisle_store::{
    insert_with_next_id, key_u64, u64_key, Entry, KvStore, StoreError, WriteBatch,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;

const NOTIFY: &str = "notify";
/// The tree of silences (key: id big-endian, value: the [`Silence`] as JSON).
pub const SILENCES: &str = "silences";

/// How long a "resolved" ledger entry is kept after it was sent.
pub const LEDGER_KEEP: Duration = Duration::from_secs(7 * 24 * 3600);

/// One queued delivery: a batch for one receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Queue id (increasing).
    pub id: u64,
    /// Receiver name.
    pub receiver: String,
    /// What to send.
    pub notifications: Vec<Notification>,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not before this time.
    pub next_attempt: Timestamp,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

fn err(operation: &'static str, tree: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError {
        operation,
        tree: tree.to_string(),
        message: e.to_string(),
    }
}

fn sent_key(receiver: &str, subject: &str) -> Vec<u8> {
    let mut k = vec![b's'];
    k.extend_from_slice(receiver.as_bytes());
    k.push(0);
    k.extend_from_slice(subject.as_bytes());
    k
}

fn job_key(id: u64) -> Vec<u8> {
    let mut k = vec![b'q'];
    k.extend_from_slice(&u64_key(id));
    k
}

/// The durable part of the notifier.
#[derive(Clone)]
pub struct NotifyStore {
    kv: Arc<dyn KvStore>,
}

impl std::fmt::Debug for NotifyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NotifyStore")
    }
}

impl NotifyStore {
    /// The queue in `kv`.
    pub fn new(kv: Arc<dyn KvStore>) -> Self {
        NotifyStore { kv }
    }

    fn scan_prefix(&self, tree: &str, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        Ok(self
            .kv
            .scan(tree, prefix, usize::MAX)?
            .into_iter()
            .take_while(|(k, _)| k.starts_with(prefix))
            .collect())
    }

    /// The sent ledger.
    pub fn ledger(&self) -> Result<BTreeMap<(String, String), Sent>, StoreError> {
        let mut out = BTreeMap::new();
        for (k, v) in self.scan_prefix(NOTIFY, b"s")? {
            let rest = &k[1..];
            let Some(split) = rest.iter().position(|&b| b == 0) else {
                continue;
            };
            let receiver = String::from_utf8_lossy(&rest[..split]).into_owned();
            let subject = String::from_utf8_lossy(&rest[split + 1..]).into_owned();
            match serde_json::from_slice(&v) {
                Ok(sent) => {
                    out.insert((receiver, subject), sent);
                }
                Err(e) => {
                    tracing::error!(%receiver, %subject, error = %e, "sent ledger entry does not decode; skipped")
                }
            }
        }
        Ok(out)
    }

    /// Queued jobs in id order.
    pub fn jobs(&self) -> Result<Vec<Job>, StoreError> {
        Ok(self
            .scan_prefix(NOTIFY, b"q")?
            .into_iter()
            .filter_map(|(k, v)| match serde_json::from_slice(&v) {
                Ok(job) => Some(job),
                Err(e) => {
                    tracing::error!(key = ?k, error = %e, "queued notification does not decode; skipped");
                    None
                }
            })
            .collect())
    }

    /// Delivered notification records by subject key.
    pub fn delivered(&self) -> Result<BTreeMap<String, Vec<ActionRecord>>, StoreError> {
        let mut out: BTreeMap<String, Vec<ActionRecord>> = BTreeMap::new();
        for (k, v) in self.scan_prefix(NOTIFY, b"n")? {
            let rest = &k[1..];
            let Some(split) = rest.iter().position(|&b| b == 0) else {
                continue;
            };
            let subject = String::from_utf8_lossy(&rest[..split]).into_owned();
            if let Ok(record) = serde_json::from_slice(&v) {
                out.entry(subject).or_default().push(record);
            }
        }
        Ok(out)
    }

    /// Stores new jobs and ledger entries atomically and flushes. Returns the jobs with ids.
    pub fn enqueue(
        &self,
        jobs: Vec<(String, Vec<Notification>)>,
        sent: &BTreeMap<(String, String), Sent>,
        now: Timestamp,
    ) -> Result<Vec<Job>, StoreError> {
        let mut next = self
            .scan_prefix(NOTIFY, b"q")?
            .last()
            .and_then(|(k, _)| key_u64(&k[1..]))
            .unwrap_or(0)
            .max(self.last_job_id()?);
        let mut batch = WriteBatch::default();
        let mut out = Vec::new();
        for (receiver, notifications) in jobs {
            next += 1;
            let job = Job {
                id: next,
                receiver,
                notifications,
                attempts: 0,
                next_attempt: now,
                last_error: None,
            };
            batch.insert(
                job_key(job.id),
                serde_json::to_vec(&job).map_err(|e| err("encode", NOTIFY, e))?,
            );
            out.push(job);
        }
        for ((receiver, subject), s) in sent {
            batch.insert(
                sent_key(receiver, subject),
                serde_json::to_vec(s).map_err(|e| err("encode", NOTIFY, e))?,
            );
        }
        batch.insert(b"last_job".to_vec(), u64_key(next).to_vec());
        self.kv.apply(NOTIFY, batch)?;
        self.kv.flush()?;
        Ok(out)
    }

    /// Removes ledger entries (resolved ones the planner no longer needs). Blocking.
    pub fn forget(&self, keys: &[(String, String)]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for (receiver, subject) in keys {
            batch.remove(sent_key(receiver, subject));
        }
        self.kv.apply(NOTIFY, batch)?;
        self.kv.flush()
    }

    fn last_job_id(&self) -> Result<u64, StoreError> {
        Ok(self
            .kv
            .get(NOTIFY, b"last_job")?
            .and_then(|v| key_u64(&v))
            .unwrap_or(0))
    }

    /// Records the outcome of a delivery attempt: delivered (removed, records kept) or
    /// rescheduled / dropped.
    pub fn finish(
        &self,
        job: &Job,
        outcome: Outcome,
        records: &[(String, ActionRecord)],
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        match outcome {
            Outcome::Delivered | Outcome::Dropped => batch.remove(job_key(job.id)),
            Outcome::Retry => {
                batch.insert(
                    job_key(job.id),
                    serde_json::to_vec(job).map_err(|e| err("encode", NOTIFY, e))?,
                );
            }
        }
        for (i, (subject, record)) in records.iter().enumerate() {
            let mut k = vec![b'n'];
            k.extend_from_slice(subject.as_bytes());
            k.push(0);
            k.extend_from_slice(&u64_key(job.id));
            k.extend_from_slice(&(i as u32).to_be_bytes());
            batch.insert(
                k,
                serde_json::to_vec(record).map_err(|e| err("encode", NOTIFY, e))?,
            );
        }
        self.kv.apply(NOTIFY, batch)?;
        self.kv.flush()
    }
}

/// What happened to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered: remove it.
    Delivered,
    /// Failed, retry later (the job carries the new schedule).
    Retry,
    /// Failed for good: remove it.
    Dropped,
}

/// Silences and maintenance windows: durable (tree `silences`) and shared in memory.
///
/// Several collectors may add silences to one database (site partitions, a standby): ids
/// are claimed with an atomic insert-if-absent ([`insert_with_next_id`]), so two silences
/// never share an id and neither overwrites the other; ids stay one dense sequence operators
/// can quote. A clustered collector takes the silences others wrote at its next refresh
/// ([`SilenceBook::merge`], [`SilenceBook::reload`]).
#[derive(Clone)]
pub struct SilenceBook {
    kv: Arc<dyn KvStore>,
    list: Arc<RwLock<Vec<Silence>>>,
}

impl std::fmt::Debug for SilenceBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SilenceBook")
    }
}

/// What a new silence says (the book assigns the id).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// Site to match.
    #[serde(default)]
    pub site: Option<String>,
    /// Zone to match.
    #[serde(default)]
    pub zone: Option<String>,
    /// Category to match.
    #[serde(default)]
    pub category: Option<Category>,
    /// Start.
    pub starts_at: Timestamp,
    /// End.
    pub ends_at: Timestamp,
    /// Who.
    pub created_by: String,
    /// Why.
    #[serde(default)]
    pub comment: String,
}

impl SilenceBook {
    /// Loads the silences stored in `kv`.
    pub fn open(kv: Arc<dyn KvStore>) -> Result<Self, StoreError> {
        let list = read_all(kv.as_ref())?;
        Ok(SilenceBook {
            kv,
            list: Arc::new(RwLock::new(list)),
        })
    }

    /// Every silence, in id order.
    pub fn all(&self) -> Vec<Silence> {
        self.list.read().map(|l| l.clone()).unwrap_or_default()
    }

    /// Stores a new silence (flushed) and returns it. Blocking.
    pub fn add(&self, new: NewSilence) -> Result<Silence, StoreError> {
        let mut list = self.list.write().map_err(|e| err("lock", SILENCES, e))?;
        let mut silence = Silence {
            id: 0,
            site: new.site,
            zone: new.zone,
            category: new.category,
            starts_at: new.starts_at,
            ends_at: new.ends_at,
            created_by: new.created_by,
            comment: new.comment,
        };
        silence.id = insert_with_next_id(self.kv.as_ref(), SILENCES, |id| {
            silence.id = id;
            serde_json::to_vec(&silence).map_err(|e| err("encode", SILENCES, e))
        })?;
        self.kv.flush()?;
        upsert(&mut list, silence.clone());
        Ok(silence)
    }

    /// Takes silences stored by another collector (a refresh's changes): each replaces the
    /// one of its id, or is added. Returns how many were taken.
    pub fn merge(&self, changed: Vec<Silence>) -> Result<usize, StoreError> {
        let mut list = self.list.write().map_err(|e| err("lock", SILENCES, e))?;
        let n = changed.len();
        for silence in changed {
            upsert(&mut list, silence);
        }
        Ok(n)
    }

    /// Reads every stored silence again (after a full rebuild of the view). Blocking.
    pub fn reload(&self) -> Result<usize, StoreError> {
        let stored = read_all(self.kv.as_ref())?;
        let mut list = self.list.write().map_err(|e| err("lock", SILENCES, e))?;
        *list = stored;
        Ok(list.len())
    }
}

/// Every stored silence, in id order; one that does not decode is logged and skipped.
fn read_all(kv: &dyn KvStore) -> Result<Vec<Silence>, StoreError> {
    Ok(kv
        .scan(SILENCES, b"", usize::MAX)?
        .into_iter()
        .filter_map(|(key, v)| match serde_json::from_slice(&v) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(key = ?key, error = %e, "stored silence does not decode; skipped");
                None
            }
        })
        .collect())
}

/// Puts `silence` in `list` (kept in id order), replacing the one of its id.
fn upsert(list: &mut Vec<Silence>, silence: Silence) {
    match list.binary_search_by_key(&silence.id, |s| s.id) {
        Ok(i) => list[i] = silence,
        Err(i) => list.insert(i, silence),
    }
}

/// Routes and noise rules from the configuration.
pub fn routes(config: &NotifyConfig) -> Vec<Route> {
    let severity = |s: &str| match s {
        "info" => Severity::Info,
        "critical" => Severity::Critical,
        _ => Severity::Warning,
    };
    let category = |c: &str| {
        [
            Category::Thermal,
            Category::Humidity,
            Category::Cooling,
            Category::Power,
            Category::Device,
        ]
        .into_iter()
        .find(|k| k.as_str() == c)
    };
    config
        .routes
        .iter()
        .map(|r| Route {
            receiver: r.receiver.clone(),
            sites: r.sites.clone(),
            zones: r.zones.clone(),
            categories: r.categories.iter().filter_map(|c| category(c)).collect(),
            min_severity: severity(&r.min_severity),
            incidents: r.incidents,
            problems: r.problems,
        })
        .collect()
}

/// Noise rules from the configuration.
pub fn noise_rules(config: &NotifyConfig) -> NoiseRules {
    NoiseRules {
        repeat_interval: config.repeat_interval,
        flap_threshold: config.flap_threshold,
        flap_window: config.flap_window,
        site_outage_zones: config.site_outage_zones,
    }
}

/// Everything the notifier task needs.
pub struct Notifier {
    /// Collector state (read).
    pub state: SharedState,
    /// Queue and ledger.
    pub store: NotifyStore,
    /// Silences.
    pub silences: SilenceBook,
    /// Pagers by receiver name.
    pub pagers: BTreeMap<String, Arc<dyn Pager>>,
    /// Routes.
    pub routes: Vec<Route>,
    /// Noise rules.
    pub rules: NoiseRules,
    /// Tick.
    pub interval: Duration,
    /// First retry delay.
    pub retry_initial: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Source of now.
    pub clock: crate::http::Clock,
    /// The sites this collector pages for: its top-level `sites` (empty: every site). In a
    /// cluster of site partitions every collector's view holds the whole fleet (refreshed from
    /// the shared database), so without this each partition would page for the others too.
    pub sites: Vec<String>,
}

impl Notifier {
    /// Runs until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut ledger = match self.store.ledger() {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "reading the notification ledger failed; notifier not started");
                return;
            }
        };
        if let Ok(delivered) = self.store.delivered() {
            let mut state = self.state.write().await;
            for (subject, records) in delivered {
                for r in records {
                    state.analysis.record_notification(&subject, r);
                }
            }
        }
        loop {
            if let Err(e) = self.tick(&mut ledger).await {
                tracing::error!(error = %e, "notifier tick failed; retrying next tick");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }
    }

    /// One round: plan, enqueue, deliver what is due. `ledger` is the in-memory copy of the
    /// sent ledger ([`NotifyStore::ledger`] at start).
    pub async fn tick(
        &self,
        ledger: &mut BTreeMap<(String, String), Sent>,
    ) -> Result<(), StoreError> {
        let now = (self.clock)();
        let planned = {
            let state = self.state.read().await;
            let at = incident_time(&state, now);
            let owned = |site: &str| crate::cluster::owns(&self.sites, site);
            let incidents: Vec<_> = state
                .analysis
                .incidents(at)
                .into_iter()
                .filter(|i| owned(&i.fingerprint.site))
                .collect();
            let problems: Vec<_> = state
                .analysis
                .problems()
                .into_iter()
                .filter(|p| owned(&p.fingerprint.site))
                .collect();
            plan(
                &incidents,
                &problems,
                &self.routes,
                &self.silences.all(),
                &self.rules,
                ledger,
                now,
            )
        };
        for (subject, reason) in &planned.held {
            tracing::debug!(%subject, %reason, "notification held back");
        }
        if !planned.jobs.is_empty() {
            let store = self.store.clone();
            let sent = planned.sent.clone();
            let jobs: Vec<(String, Vec<Notification>)> = planned.jobs.into_iter().collect();
            spawn_blocking(move || store.enqueue(jobs, &sent, now)).await?;
            ledger.extend(planned.sent);
        }
        // A resolution sent long ago is not needed any more: a subject never sent and already
        // resolved is not notified, so forgetting it changes nothing and bounds the ledger.
        let stale: Vec<(String, String)> = ledger
            .iter()
            .filter(|(_, s)| s.phase == Phase::Resolved && s.at.plus(LEDGER_KEEP) < now)
            .map(|(k, _)| k.clone())
            .collect();
        if !stale.is_empty() {
            let store = self.store.clone();
            let keys = stale.clone();
            spawn_blocking(move || store.forget(&keys)).await?;
            for k in &stale {
                ledger.remove(k);
            }
        }
        let store = self.store.clone();
        let jobs = spawn_blocking(move || store.jobs()).await?;
        let mut figures = TickFigures {
            queued_jobs: jobs.len() as u64,
            queued_notifications: jobs.iter().map(|j| j.notifications.len() as u64).sum(),
            ..TickFigures::default()
        };
        for mut job in jobs.into_iter().filter(|j| j.next_attempt <= now) {
            let Some(pager) = self.pagers.get(&job.receiver).cloned() else {
                figures.finished(&job, Err("no_receiver"));
                tracing::warn!(receiver = %job.receiver, job = job.id, "no such receiver any more; dropped");
                let store = self.store.clone();
                spawn_blocking(move || store.finish(&job, Outcome::Dropped, &[])).await?;
                continue;
            };
            let batch = job.notifications.clone();
            let result = tokio::task::spawn_blocking(move || pager.deliver(&batch, now))
                .await
                .unwrap_or_else(|e| {
                    Err(DeliveryError::Retry {
                        receiver: String::new(),
                        message: format!("delivery task failed: {e}"),
                        retry_after: None,
                    })
                });
            let (outcome, records) = match result {
                Ok(()) => {
                    tracing::info!(receiver = %job.receiver, job = job.id, notifications = job.notifications.len(), attempts = job.attempts + 1, "notification delivered");
                    let records: Vec<(String, ActionRecord)> = job
                        .notifications
                        .iter()
                        .map(|n| {
                            (
                                n.subject.key.clone(),
                                ActionRecord {
                                    at: now,
                                    actor: format!("pager {}", job.receiver),
                                    text: format!(
                                        "{} notification delivered{}",
                                        match n.phase {
                                            Phase::Firing => "trigger",
                                            Phase::Acknowledged => "acknowledge",
                                            Phase::Resolved => "resolve",
                                        },
                                        if n.repeat { " (repeat)" } else { "" }
                                    ),
                                },
                            )
                        })
                        .collect();
                    figures.finished(&job, Ok(()));
                    (Outcome::Delivered, records)
                }
                Err(DeliveryError::Retry {
                    message,
                    retry_after,
                    ..
                }) => {
                    job.attempts += 1;
                    figures.failed(&job.receiver, "retry");
                    let delay = retry_delay(
                        job.attempts,
                        self.retry_initial,
                        self.retry_max,
                        retry_after,
                    );
                    job.next_attempt = now.plus(delay);
                    tracing::warn!(receiver = %job.receiver, job = job.id, attempts = job.attempts, retry_in = %humantime::format_duration(delay), error = %message, "notification delivery failed; will retry");
                    job.last_error = Some(message);
                    (Outcome::Retry, Vec::new())
                }
                Err(e @ DeliveryError::Permanent { .. }) => {
                    figures.finished(&job, Err("permanent"));
                    tracing::error!(receiver = %job.receiver, job = job.id, error = %e, "notification rejected; dropped");
                    (Outcome::Dropped, Vec::new())
                }
            };
            if !records.is_empty() {
                let mut state = self.state.write().await;
                for (subject, record) in &records {
                    state.analysis.record_notification(subject, record.clone());
                }
            }
            let store = self.store.clone();
            spawn_blocking(move || store.finish(&job, outcome, &records)).await?;
        }
        figures.apply(&mut self.state.write().await.notify);
        Ok(())
    }
}

/// What one tick did, applied to [`crate::state::NotifyFigures`] under one write lock.
#[derive(Debug, Default)]
struct TickFigures {
    /// Jobs queued after the tick.
    queued_jobs: u64,
    /// Notifications in them.
    queued_notifications: u64,
    /// Jobs delivered by receiver.
    delivered: BTreeMap<String, u64>,
    /// Failures by (receiver, kind).
    failures: BTreeMap<(String, &'static str), u64>,
}

impl TickFigures {
    /// `job` left the queue: delivered (`Ok`) or dropped (`Err(kind)`).
    fn finished(&mut self, job: &Job, how: Result<(), &'static str>) {
        self.queued_jobs = self.queued_jobs.saturating_sub(1);
        self.queued_notifications = self
            .queued_notifications
            .saturating_sub(job.notifications.len() as u64);
        match how {
            Ok(()) => *self.delivered.entry(job.receiver.clone()).or_default() += 1,
            Err(kind) => self.failed(&job.receiver, kind),
        }
    }

    /// A delivery to `receiver` failed (`kind`: `retry`, `permanent`, `no_receiver`).
    fn failed(&mut self, receiver: &str, kind: &'static str) {
        *self
            .failures
            .entry((receiver.to_string(), kind))
            .or_default() += 1;
    }

    fn apply(self, to: &mut crate::state::NotifyFigures) {
        to.queued_jobs = self.queued_jobs;
        to.queued_notifications = self.queued_notifications;
        for (receiver, n) in self.delivered {
            *to.delivered.entry(receiver).or_default() += n;
        }
        for (key, n) in self.failures {
            *to.failures.entry(key).or_default() += n;
        }
    }
}

/// Runs a blocking store call.
async fn spawn_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| err("task", NOTIFY, e))?
}

/// Builds the pagers of `collector`'s `[notify]` (reading their secret files) and, if any
/// route exists, spawns the notifier on `tasks`, paging for the collector's own `sites`.
/// Errors name the receiver and the file.
pub fn spawn(
    tasks: &mut tokio::task::JoinSet<()>,
    collector: &coldaisle_config::CollectorConfig,
    kv: Arc<dyn KvStore>,
    state: SharedState,
    silences: SilenceBook,
    shutdown: watch::Receiver<bool>,
    active: Option<watch::Receiver<bool>>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let (config, sites) = (&collector.raw.notify, &collector.raw.sites);
    if config.routes.is_empty() {
        return Ok(());
    }
    let mut pagers: BTreeMap<String, Arc<dyn Pager>> = BTreeMap::new();
    for r in &config.receivers {
        let secret = match &r.secret_file {
            Some(path) => Some(std::fs::read_to_string(path).with_context(|| {
                format!(
                    "reading the secret of receiver {:?} from {}",
                    r.name,
                    path.display()
                )
            })?),
            None => None,
        };
        let mut resolved = r.clone();
        if let Some(path) = &r.url_file {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!(
                    "reading the URL of receiver {:?} from {}",
                    r.name,
                    path.display()
                )
            })?;
            let url = text.lines().next().unwrap_or_default().trim().to_string();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                anyhow::bail!(
                    "{}: the URL of receiver {:?} must start with http:// or https://",
                    path.display(),
                    r.name
                );
            }
            resolved.url = Some(url);
            resolved.url_file = None;
        }
        pagers.insert(
            r.name.clone(),
            Arc::from(crate::pagers::build(&resolved, secret)?),
        );
    }
    let notifier = Notifier {
        state,
        store: NotifyStore::new(kv),
        silences,
        pagers,
        routes: routes(config),
        rules: noise_rules(config),
        interval: config.interval,
        retry_initial: config.retry_initial,
        retry_max: config.retry_max,
        clock: Arc::new(Timestamp::now),
        sites: sites.to_vec(),
    };
    tracing::info!(
        receivers = config.receivers.len(),
        routes = config.routes.len(),
        "notifier started"
    );
    // In a cluster, only the active collector pages (it reads the ledger when it starts).
    tasks.spawn(async move {
        let mut stop = shutdown.clone();
        if crate::cluster::until_active(active, &mut stop).await {
            notifier.run(shutdown).await;
        }
    });
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod silence_book_tests {
    use super::*;
    use coldaisle_store::MemoryStore;

    fn new_silence(site: &str) -> NewSilence {
        NewSilence {
            site: Some(site.into()),
            zone: None,
            category: None,
            starts_at: Timestamp(0),
            ends_at: Timestamp(60_000),
            created_by: "ops".into(),
            comment: String::new(),
        }
    }

    /// Two collectors' books on one store (two partitions on one database): the second does
    /// not reuse the first's id (it used to take "its own last + 1" and overwrite it), and
    /// each takes the other's silence by merge or reload.
    #[test]
    fn two_books_on_one_store_never_share_an_id_and_follow_each_other() {
        let kv: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
        let (a, b) = (
            SilenceBook::open(kv.clone()).unwrap(),
            SilenceBook::open(kv.clone()).unwrap(),
        );
        let first = a.add(new_silence("dc1")).unwrap();
        let second = b.add(new_silence("dc2")).unwrap();
        assert_eq!((first.id, second.id), (1, 2));
        assert_eq!(
            read_all(kv.as_ref()).unwrap(),
            vec![first.clone(), second.clone()]
        );
        assert_eq!(b.all(), vec![second.clone()], "not followed yet");
        assert_eq!(b.merge(vec![first.clone()]).unwrap(), 1);
        assert_eq!(b.all(), vec![first.clone(), second.clone()], "in id order");
        assert_eq!(b.merge(vec![first.clone()]).unwrap(), 1);
        assert_eq!(b.all().len(), 2, "merging again replaces, never duplicates");
        assert_eq!(a.reload().unwrap(), 2);
        assert_eq!(a.all(), vec![first, second]);
    }
}
