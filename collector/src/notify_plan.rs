//! The notification planner: compares what incidents and problems look like now with what was
//! already sent to each receiver and decides what to send next.
//!
//! Pure: incidents, problems, routes, silences, the sent ledger and `now` come in; a [`Plan`]
//! comes out. The notifier stores the plan's jobs and ledger updates in one atomic batch before
//! delivering anything, so a restart neither loses nor repeats a trigger.
//!
//! Rules, per receiver and subject (an incident, a problem, or a site outage):
//! - **Routing**: a subject goes to every route whose sites, zones, categories (empty = any) and
//!   minimum severity match; incidents and problems are opted in per route.
//! - **Lifecycle**: desired phase is firing, acknowledged (an operator acknowledged it; for a
//!   problem: investigating or known error) or resolved. A change of phase, or a severity above
//!   the one sent, is notified; a subject never notified is not notified when already resolved.
//! - **Repeat**: a subject still firing is notified again every `repeat_interval`.
//! - **Silences and maintenance windows**: a firing subject matched by an active silence is not
//!   notified (its resolution still is, if its trigger went out).
//! - **Flap suppression**: an incident whose fingerprint opened `flap_threshold` or more
//!   incidents within `flap_window` up to its own opening is not paged.
//! - **Inhibition**: when `site_outage_zones` or more zones of a site have open incidents, one
//!   site-outage subject fires and its zones' incidents not yet paged are held back.
//! - **Grouping**: everything for one receiver in one plan is one job (one request for
//!   receivers that take lists: Alertmanager, webhook, Slack).

use crate::actions::ProblemStatus;
use crate::incidents::{Incident, IncidentStatus};
use crate::problems::Problem;
use coldaisle_core::{Category, Fingerprint, Severity, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// One incident.
    Incident,
    /// One problem record.
    Problem,
    /// Several zones of a site at once.
    SiteOutage,
}

/// Where a subject is in its lifecycle, as pagers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Needs someone.
    Firing,
    /// Someone has it.
    Acknowledged,
    /// Over.
    Resolved,
}

/// The content of one notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// Stable key: incident or problem id, or `site-{site}` (PagerDuty dedup key, Opsgenie
    /// alias, Alertmanager `id` label).
    pub key: String,
    /// What it is.
    pub kind: SubjectKind,
    /// Site.
    pub site: String,
    /// Zone (empty for a site outage).
    pub zone: String,
    /// Category (`thermal`, ...; `mixed` for a site outage).
    pub category: String,
    /// Severity.
    pub severity: Severity,
    /// One line for humans.
    pub summary: String,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended, if it did.
    pub ended_at: Option<Timestamp>,
    /// Workaround of a known error, if any.
    pub workaround: Option<String>,
    /// Probable cause in words, if known.
    pub probable_cause: Option<String>,
}

/// One notification for one receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// What it is about.
    pub subject: Subject,
    /// The phase it announces.
    pub phase: Phase,
    /// True if it repeats a phase already sent (repeat interval).
    pub repeat: bool,
}

/// What was last sent for one (receiver, subject).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// Phase sent.
    pub phase: Phase,
    /// Severity sent.
    pub severity: Severity,
    /// When it was planned.
    pub at: Timestamp,
}

/// A routing rule (built from the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Receiver name.
    pub receiver: String,
    /// Sites (empty: any).
    pub sites: Vec<String>,
    /// Zones (empty: any).
    pub zones: Vec<String>,
    /// Categories (empty: any).
    pub categories: Vec<Category>,
    /// Lowest severity notified.
    pub min_severity: Severity,
    /// Incidents (and site outages) go through this route.
    pub incidents: bool,
    /// Problems go through this route.
    pub problems: bool,
}

/// A silence or maintenance window: matching subjects are not paged between its times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    /// Id assigned when stored.
    pub id: u64,
    /// Site to match (`None`: any).
    #[serde(default)]
    pub site: Option<String>,
    /// Zone to match (`None`: any).
    #[serde(default)]
    pub zone: Option<String>,
    /// Category to match (`None`: any).
    #[serde(default)]
    pub category: Option<Category>,
    /// Start (a maintenance window starts in the future).
    pub starts_at: Timestamp,
    /// End (exclusive).
    pub ends_at: Timestamp,
    /// Who created it.
    pub created_by: String,
    /// Why.
    #[serde(default)]
    pub comment: String,
}

impl Silence {
    /// True if it silences `subject` at `now`.
    pub fn matches(&self, subject: &Subject, now: Timestamp) -> bool {
        self.starts_at <= now
            && now < self.ends_at
            && self.site.as_deref().is_none_or(|s| s == subject.site)
            && self.zone.as_deref().is_none_or(|z| z == subject.zone)
            && self.category.is_none_or(|c| c.as_str() == subject.category)
    }
}

/// Noise-control settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoiseRules {
    /// Re-notify a firing subject this often.
    pub repeat_interval: Duration,
    /// Incidents of one fingerprint within `flap_window` that make it flapping (0: off).
    pub flap_threshold: usize,
    /// Window of the flap rule.
    pub flap_window: Duration,
    /// Zones with open incidents that make a site outage (0: off).
    pub site_outage_zones: usize,
}

/// What the planner decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Notifications per receiver (one job each).
    pub jobs: BTreeMap<String, Vec<Notification>>,
    /// New ledger entries, by (receiver, subject key).
    pub sent: BTreeMap<(String, String), Sent>,
    /// Subjects held back, with the reason (for the log and the chronicle).
    pub held: BTreeMap<String, String>,
}

impl Route {
    fn matches(&self, s: &Subject) -> bool {
        let kind_ok = match s.kind {
            SubjectKind::Incident | SubjectKind::SiteOutage => self.incidents,
            SubjectKind::Problem => self.problems,
        };
        kind_ok
            && s.severity >= self.min_severity
            && (self.sites.is_empty() || self.sites.contains(&s.site))
            && (s.kind == SubjectKind::SiteOutage
                || ((self.zones.is_empty() || self.zones.contains(&s.zone))
                    && (self.categories.is_empty()
                        || self.categories.iter().any(|c| c.as_str() == s.category))))
    }
}

fn incident_subject(i: &Incident) -> (Subject, Phase) {
    let phase = match (i.status, &i.acknowledged) {
        (IncidentStatus::Resolved, _) => Phase::Resolved,
        (IncidentStatus::Open, Some(_)) => Phase::Acknowledged,
        (IncidentStatus::Open, None) => Phase::Firing,
    };
    let fp = &i.fingerprint;
    let subject = Subject {
        key: i.id.clone(),
        kind: SubjectKind::Incident,
        site: fp.site.clone(),
        zone: fp.zone.clone(),
        category: fp.category.as_str().to_string(),
        severity: i.severity,
        summary: format!(
            "{} {} incident in zone {} of {} ({} source(s) raised)",
            i.severity.as_str(),
            fp.category,
            fp.zone,
            fp.site,
            i.active_sources.len()
        ),
        started_at: i.opened_at,
        ended_at: i.resolved_at,
        workaround: i.workaround.clone(),
        probable_cause: i.probable_cause.as_ref().map(|c| c.summary.clone()),
    };
    (subject, phase)
}

fn problem_subject(p: &Problem) -> (Subject, Phase) {
    let phase = match p.status {
        ProblemStatus::Open => Phase::Firing,
        ProblemStatus::Investigating | ProblemStatus::KnownError => Phase::Acknowledged,
        ProblemStatus::Resolved => Phase::Resolved,
    };
    let fp = &p.fingerprint;
    let subject = Subject {
        key: p.id.clone(),
        kind: SubjectKind::Problem,
        site: fp.site.clone(),
        zone: fp.zone.clone(),
        category: fp.category.as_str().to_string(),
        severity: Severity::Warning,
        // A reopening says so: the receiver may have closed its ticket long ago.
        summary: if p.reopened > 0 && p.status != ProblemStatus::Resolved {
            format!(
                "problem in zone {} of {} reopened ({} time(s)): {}",
                fp.zone, fp.site, p.reopened, p.reason
            )
        } else {
            format!("problem in zone {} of {}: {}", fp.zone, fp.site, p.reason)
        },
        started_at: p.opened_at,
        ended_at: p.resolved_at,
        workaround: p.workaround.clone(),
        probable_cause: p.probable_cause.as_ref().map(|c| c.summary.clone()),
    };
    (subject, phase)
}

/// Opening times of the incidents of each fingerprint, sorted: the flap rule counts in it with
/// two binary searches instead of scanning every incident for every incident.
fn openings(incidents: &[Incident]) -> HashMap<&Fingerprint, Vec<Timestamp>> {
    let mut by_fp: HashMap<&Fingerprint, Vec<Timestamp>> = HashMap::new();
    for i in incidents {
        by_fp.entry(&i.fingerprint).or_default().push(i.opened_at);
    }
    for times in by_fp.values_mut() {
        times.sort_unstable();
    }
    by_fp
}

/// True if `incident` opened while its fingerprint was flapping: at least `flap_threshold`
/// incidents of its fingerprint opened in `(opened_at - flap_window, opened_at]`.
fn flapping(
    incident: &Incident,
    openings: &HashMap<&Fingerprint, Vec<Timestamp>>,
    rules: &NoiseRules,
) -> bool {
    if rules.flap_threshold == 0 {
        return false;
    }
    let Some(times) = openings.get(&incident.fingerprint) else {
        return false;
    };
    let from = incident.opened_at.minus(rules.flap_window);
    let start = times.partition_point(|t| *t <= from);
    let end = times.partition_point(|t| *t <= incident.opened_at);
    end.saturating_sub(start) >= rules.flap_threshold
}

/// Site-outage subjects: sites with open incidents in at least `site_outage_zones` zones.
fn site_outages(incidents: &[Incident], rules: &NoiseRules) -> Vec<(Subject, Phase)> {
    if rules.site_outage_zones == 0 {
        return Vec::new();
    }
    let mut zones: BTreeMap<&str, (BTreeSet<&str>, Severity, Timestamp)> = BTreeMap::new();
    for i in incidents
        .iter()
        .filter(|i| i.status == IncidentStatus::Open)
    {
        let e = zones.entry(&i.fingerprint.site).or_insert((
            BTreeSet::new(),
            Severity::Info,
            i.opened_at,
        ));
        e.0.insert(&i.fingerprint.zone);
        e.1 = e.1.max(i.severity);
        e.2 = e.2.min(i.opened_at);
    }
    zones
        .into_iter()
        .filter(|(_, (z, _, _))| z.len() >= rules.site_outage_zones)
        .map(|(site, (z, severity, started))| {
            let list: Vec<&str> = z.into_iter().collect();
            (
                Subject {
                    key: format!("site-{site}"),
                    kind: SubjectKind::SiteOutage,
                    site: site.to_string(),
                    zone: String::new(),
                    category: "mixed".to_string(),
                    severity,
                    summary: format!(
                        "site {site}: {} zones with open incidents ({})",
                        list.len(),
                        list.join(", ")
                    ),
                    started_at: started,
                    ended_at: None,
                    workaround: None,
                    probable_cause: None,
                },
                Phase::Firing,
            )
        })
        .collect()
}

/// Plans the notifications due at `now`; see the module documentation for the rules.
pub fn plan(
    incidents: &[Incident],
    problems: &[Problem],
    routes: &[Route],
    silences: &[Silence],
    rules: &NoiseRules,
    sent: &BTreeMap<(String, String), Sent>,
    now: Timestamp,
) -> Plan {
    let mut out = Plan::default();
    let outages = site_outages(incidents, rules);
    let outage_sites: BTreeSet<String> = outages.iter().map(|(s, _)| s.site.clone()).collect();
    let mut subjects: Vec<(Subject, Phase, Option<String>)> = Vec::new();
    let openings = openings(incidents);
    for i in incidents {
        let (subject, phase) = incident_subject(i);
        let hold = if flapping(i, &openings, rules) {
            Some("flapping".to_string())
        } else if outage_sites.contains(&subject.site) {
            Some(format!("inhibited by the outage of site {}", subject.site))
        } else {
            None
        };
        subjects.push((subject, phase, hold));
    }
    // A site outage that ended: resolve it where it was sent.
    for ((_, key), s) in sent {
        if let Some(site) = key.strip_prefix("site-") {
            if s.phase != Phase::Resolved && !outage_sites.contains(site) {
                let subject = Subject {
                    key: key.clone(),
                    kind: SubjectKind::SiteOutage,
                    site: site.to_string(),
                    zone: String::new(),
                    category: "mixed".to_string(),
                    severity: s.severity,
                    summary: format!("site {site}: outage over"),
                    started_at: s.at,
                    ended_at: Some(now),
                    workaround: None,
                    probable_cause: None,
                };
                if !subjects.iter().any(|(x, _, _)| x.key == subject.key) {
                    subjects.push((subject, Phase::Resolved, None));
                }
            }
        }
    }
    subjects.extend(outages.into_iter().map(|(s, p)| (s, p, None)));
    subjects.extend(problems.iter().map(|p| {
        let (s, phase) = problem_subject(p);
        (s, phase, None)
    }));
    for (subject, phase, hold) in subjects {
        let silenced = silences.iter().find(|s| s.matches(&subject, now));
        for route in routes.iter().filter(|r| r.matches(&subject)) {
            let key = (route.receiver.clone(), subject.key.clone());
            if out.sent.contains_key(&key) {
                continue; // two routes to one receiver: once
            }
            let last = sent.get(&key);
            let fresh = phase != Phase::Resolved;
            if last.is_none() && fresh {
                if let Some(s) = silenced {
                    out.held
                        .insert(subject.key.clone(), format!("silenced by silence {}", s.id));
                    continue;
                }
                if let Some(reason) = &hold {
                    out.held.insert(subject.key.clone(), reason.clone());
                    continue;
                }
            }
            let (send, repeat) = match last {
                None => (fresh, false),
                Some(l) if l.phase == Phase::Resolved => (fresh, false),
                Some(l) if phase == Phase::Resolved => (true, l.phase == Phase::Resolved),
                Some(l) if silenced.is_some() => {
                    let _ = l;
                    (false, false)
                }
                Some(l) if l.phase != phase || subject.severity > l.severity => (true, false),
                Some(l) => {
                    let due = phase == Phase::Firing && now >= l.at.plus(rules.repeat_interval);
                    (due, true)
                }
            };
            if !send {
                continue;
            }
            out.sent.insert(
                key,
                Sent {
                    phase,
                    severity: subject.severity,
                    at: now,
                },
            );
            out.jobs
                .entry(route.receiver.clone())
                .or_default()
                .push(Notification {
                    subject: subject.clone(),
                    phase,
                    repeat,
                });
        }
    }
    out
}

/// Delay before retry number `attempt` (1 = first retry): `initial · 2^(attempt-1)` capped at
/// `max`, and never shorter than the receiver's `Retry-After`.
pub fn retry_delay(
    attempt: u32,
    initial: Duration,
    max: Duration,
    retry_after: Option<Duration>,
) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
    let backoff = initial.saturating_mul(factor).min(max);
    retry_after.map_or(backoff, |r| r.max(backoff))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::analysis::Analysis;
    use crate::incidents::tests::{sensor, MIN, T0};
    use crate::incidents::IncidentRules;
    use crate::problems::ProblemRules;
    use coldaisle_core::EventState::{Cleared, Raised};
    use Severity::{Critical, Warning};

    fn rules() -> NoiseRules {
        NoiseRules {
            repeat_interval: Duration::from_secs(240),
            flap_threshold: 3,
            flap_window: Duration::from_secs(3600),
            site_outage_zones: 3,
        }
    }

    fn route(receiver: &str) -> Route {
        Route {
            receiver: receiver.into(),
            sites: vec![],
            zones: vec![],
            categories: vec![],
            min_severity: Warning,
            incidents: true,
            problems: false,
        }
    }

    /// Runs the planner and applies its ledger, as the notifier does.
    fn step(
        a: &Analysis,
        routes: &[Route],
        silences: &[Silence],
        ledger: &mut BTreeMap<(String, String), Sent>,
        now: i64,
    ) -> Plan {
        let now = Timestamp(now);
        let p = plan(
            &a.incidents(now),
            &a.problems(),
            routes,
            silences,
            &rules(),
            ledger,
            now,
        );
        ledger.extend(p.sent.clone());
        p
    }

    fn phases(p: &Plan, receiver: &str) -> Vec<(String, Phase, bool)> {
        p.jobs
            .get(receiver)
            .map(|v| {
                v.iter()
                    .map(|n| (n.subject.key.clone(), n.phase, n.repeat))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn analysis() -> Analysis {
        Analysis::new(IncidentRules::default(), ProblemRules::default())
    }

    #[test]
    fn trigger_repeat_ack_resolve_once_each() {
        let mut a = analysis();
        a.ingest(sensor("a1", 1, "Z1", "r1", Raised, Warning, 28.0, T0));
        let id = format!("inc-dc1-z1-thermal-{T0}");
        let routes = [route("pd")];
        let mut ledger = BTreeMap::new();
        assert_eq!(
            phases(&step(&a, &routes, &[], &mut ledger, T0), "pd"),
            vec![(id.clone(), Phase::Firing, false)]
        );
        // Nothing new before the repeat interval; a repeat at it.
        assert!(step(&a, &routes, &[], &mut ledger, T0 + 3 * MIN)
            .jobs
            .is_empty());
        assert_eq!(
            phases(&step(&a, &routes, &[], &mut ledger, T0 + 4 * MIN), "pd"),
            vec![(id.clone(), Phase::Firing, true)]
        );
        a.ingest_action(crate::actions::OperatorAction {
            id: 1,
            at: Timestamp(T0 + 5 * MIN),
            actor: "ann".into(),
            kind: crate::actions::ActionKind::Acknowledge {
                incident: id.clone(),
            },
        })
        .unwrap();
        assert_eq!(
            phases(&step(&a, &routes, &[], &mut ledger, T0 + 5 * MIN), "pd"),
            vec![(id.clone(), Phase::Acknowledged, false)]
        );
        // Acknowledged is not repeated.
        assert!(step(&a, &routes, &[], &mut ledger, T0 + 15 * MIN)
            .jobs
            .is_empty());
        a.ingest(sensor(
            "a1",
            2,
            "Z1",
            "r1",
            Cleared,
            Warning,
            26.0,
            T0 + 16 * MIN,
        ));
        // Resolved once the quiet period (15m) is over.
        assert!(step(&a, &routes, &[], &mut ledger, T0 + 30 * MIN)
            .jobs
            .is_empty());
        assert_eq!(
            phases(&step(&a, &routes, &[], &mut ledger, T0 + 31 * MIN), "pd"),
            vec![(id.clone(), Phase::Resolved, false)]
        );
        assert!(step(&a, &routes, &[], &mut ledger, T0 + 60 * MIN)
            .jobs
            .is_empty());
    }

    #[test]
    fn routing_by_site_zone_category_and_severity_and_escalation_resends() {
        let mut a = analysis();
        a.ingest(sensor("a1", 1, "Z1", "r1", Raised, Warning, 28.0, T0));
        a.ingest(sensor("a1", 2, "Z2", "r2", Raised, Warning, 28.0, T0));
        let routes = [
            Route {
                zones: vec!["Z2".into()],
                ..route("z2-only")
            },
            Route {
                min_severity: Critical,
                ..route("critical-only")
            },
            Route {
                categories: vec![Category::Humidity],
                ..route("humidity")
            },
            Route {
                sites: vec!["dc9".into()],
                ..route("other-site")
            },
        ];
        let mut ledger = BTreeMap::new();
        let p = step(&a, &routes, &[], &mut ledger, T0);
        assert_eq!(p.jobs.keys().collect::<Vec<_>>(), vec!["z2-only"]);
        a.ingest(sensor(
            "a1",
            3,
            "Z1",
            "r1b",
            Raised,
            Critical,
            33.0,
            T0 + MIN,
        ));
        let p = step(&a, &routes, &[], &mut ledger, T0 + MIN);
        assert_eq!(
            phases(&p, "critical-only"),
            vec![(format!("inc-dc1-z1-thermal-{T0}"), Phase::Firing, false)]
        );
    }

    #[test]
    fn silences_and_maintenance_windows_hold_back_triggers_not_resolutions() {
        let mut a = analysis();
        a.ingest(sensor("a1", 1, "Z1", "r1", Raised, Warning, 28.0, T0));
        a.ingest(sensor("a1", 2, "Z2", "r2", Raised, Warning, 28.0, T0));
        let routes = [route("am")];
        let silence = |id, zone: &str, from: i64, to: i64| Silence {
            id,
            site: Some("dc1".into()),
            zone: Some(zone.into()),
            category: None,
            starts_at: Timestamp(from),
            ends_at: Timestamp(to),
            created_by: "ann".into(),
            comment: String::new(),
        };
        // Z1 silenced now; Z2 has a maintenance window that starts later.
        let silences = [
            silence(1, "Z1", T0 - MIN, T0 + 10 * MIN),
            silence(2, "Z2", T0 + 5 * MIN, T0 + 60 * MIN),
        ];
        let mut ledger = BTreeMap::new();
        let p = step(&a, &routes, &silences, &mut ledger, T0);
        assert_eq!(
            phases(&p, "am"),
            vec![(format!("inc-dc1-z2-thermal-{T0}"), Phase::Firing, false)]
        );
        assert_eq!(
            p.held[&format!("inc-dc1-z1-thermal-{T0}")],
            "silenced by silence 1"
        );
        // During Z2's window: no repeat of its trigger. Z1's silence ended: it pages now.
        let p = step(&a, &routes, &silences, &mut ledger, T0 + 10 * MIN);
        assert_eq!(
            phases(&p, "am"),
            vec![(format!("inc-dc1-z1-thermal-{T0}"), Phase::Firing, false)]
        );
        // Z2 resolves during its window: the resolution still goes out.
        a.ingest(sensor(
            "a1",
            3,
            "Z2",
            "r2",
            Cleared,
            Warning,
            26.0,
            T0 + 11 * MIN,
        ));
        let p = step(&a, &routes, &silences, &mut ledger, T0 + 27 * MIN);
        assert!(phases(&p, "am").contains(&(
            format!("inc-dc1-z2-thermal-{T0}"),
            Phase::Resolved,
            false
        )));
    }

    #[test]
    fn flapping_fingerprint_is_not_paged() {
        let mut a = Analysis::new(
            IncidentRules {
                quiet_period: Duration::from_secs(60),
                sustained_after: None,
            },
            ProblemRules::default(),
        );
        let mut seq = 0;
        for k in 0..3 {
            let t = T0 + k * 10 * MIN;
            seq += 2;
            a.ingest(sensor("a1", seq, "Z1", "r1", Raised, Warning, 28.0, t));
            a.ingest(sensor(
                "a1",
                seq + 1,
                "Z1",
                "r1",
                Cleared,
                Warning,
                26.0,
                t + MIN,
            ));
        }
        let routes = [route("am")];
        let mut ledger = BTreeMap::new();
        // The third incident within the hour opens at T0+20m: held back as flapping.
        let p = step(&a, &routes, &[], &mut ledger, T0 + 20 * MIN);
        let third = format!("inc-dc1-z1-thermal-{}", T0 + 20 * MIN);
        assert_eq!(p.held[&third], "flapping");
        assert!(phases(&p, "am").iter().all(|(k, _, _)| k != &third));
    }

    #[test]
    fn site_outage_inhibits_its_zones_and_resolves_when_over() {
        let mut a = analysis();
        for (i, z) in ["Z1", "Z2", "Z3"].iter().enumerate() {
            a.ingest(sensor(
                "a1",
                i as u64 * 2 + 1,
                z,
                "r",
                Raised,
                Warning,
                28.0,
                T0,
            ));
        }
        let routes = [route("am")];
        let mut ledger = BTreeMap::new();
        let p = step(&a, &routes, &[], &mut ledger, T0);
        assert_eq!(
            phases(&p, "am"),
            vec![("site-dc1".to_string(), Phase::Firing, false)]
        );
        assert_eq!(
            p.jobs["am"][0].subject.summary,
            "site dc1: 3 zones with open incidents (Z1, Z2, Z3)"
        );
        assert_eq!(p.held.len(), 3);
        // Z3 clears: two zones left, the outage is over; Z1 and Z2 now page on their own.
        a.ingest(sensor("a1", 6, "Z3", "r", Cleared, Warning, 26.0, T0 + MIN));
        let p = step(&a, &routes, &[], &mut ledger, T0 + 20 * MIN);
        let got = phases(&p, "am");
        assert!(
            got.contains(&("site-dc1".to_string(), Phase::Resolved, false)),
            "{got:?}"
        );
        assert!(got.contains(&(format!("inc-dc1-z1-thermal-{T0}"), Phase::Firing, false)));
        assert!(got.contains(&(format!("inc-dc1-z2-thermal-{T0}"), Phase::Firing, false)));
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn problems_notify_on_routes_that_opt_in() {
        let mut a = analysis();
        a.ingest(sensor("a1", 1, "Z1", "r1", Raised, Critical, 33.0, T0));
        let routes = [Route {
            problems: true,
            incidents: false,
            ..route("tickets")
        }];
        let mut ledger = BTreeMap::new();
        let p = step(&a, &routes, &[], &mut ledger, T0);
        assert_eq!(
            phases(&p, "tickets"),
            vec![(format!("prb-dc1-z1-thermal-{T0}"), Phase::Firing, false)]
        );
    }

    #[test]
    fn retry_delay_doubles_caps_and_respects_retry_after() {
        let s = Duration::from_secs;
        assert_eq!(retry_delay(1, s(1), s(60), None), s(1));
        assert_eq!(retry_delay(2, s(1), s(60), None), s(2));
        assert_eq!(retry_delay(5, s(1), s(60), None), s(16));
        assert_eq!(retry_delay(7, s(1), s(60), None), s(60));
        assert_eq!(retry_delay(100, s(1), s(60), None), s(60));
        assert_eq!(retry_delay(1, s(1), s(60), Some(s(30))), s(30));
        assert_eq!(retry_delay(7, s(1), s(60), Some(s(5))), s(60));
    }
}
