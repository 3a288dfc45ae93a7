//! Pager adapters: one [`Pager`] trait, one small adapter per API. Each turns a batch of
//! [`Notification`]s into HTTP requests (blocking, via `ureq`; the notifier calls them from
//! `spawn_blocking`) and classifies failures as retryable (network, 408, 429 with its
//! `Retry-After`, 5xx) or permanent (other 4xx).
//!
//! | kind | requests |
//! |---|---|
//! | Alertmanager | one `POST {url}/api/v2/alerts` with every notification as an alert (labels `alertname`, `id`, `site`, `zone`, `category`, `severity`, `kind`; `endsAt` on resolve) |
//! | webhook | one `POST {url}`, JSON [`WebhookBody`], header `X-Coldaisle-Signature: sha256=<hex HMAC-SHA256 of the body>` |
//! | PagerDuty | `POST {url}/v2/enqueue` per notification: trigger / acknowledge / resolve, `dedup_key` = subject key |
//! | Slack | one `POST {url}` with a `text` listing the batch |
//! | Opsgenie | per notification: `POST {url}/v2/alerts` (alias = subject key), or `…/v2/alerts/{alias}/acknowledge` / `close?identifierType=alias`; `Authorization: GenieKey <key>` |

use crate::notify_plan::{Notification, Phase};
use coldaisle_config::notify::{redact_in, redact_url, ReceiverConfig, ReceiverKind};
use coldaisle_core::{Severity, Timestamp};
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::Duration;

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying later (not before `retry_after` if the receiver said so).
    #[error("{receiver}: {message} (will retry)")]
    Retry {
        /// Receiver name.
        receiver: String,
        /// What happened.
        message: String,
        /// The receiver's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help (bad request, bad credentials).
    #[error("{receiver}: {message} (not retried)")]
    Permanent {
        /// Receiver name.
        receiver: String,
        /// What happened.
        message: String,
    },
}

/// One pager endpoint.
pub trait Pager: Send + Sync {
    /// The receiver's name (from the configuration).
    fn name(&self) -> &str;
    /// Delivers a batch; blocking. `now` stamps resolutions without an end time.
    fn deliver(&self, batch: &[Notification], now: Timestamp) -> Result<(), DeliveryError>;
}

/// The HTTP side shared by the adapters.
struct Http {
    /// Receiver name (for errors).
    name: String,
    /// The receiver's HTTP(S) agent (timeout, TLS roots).
    agent: ureq::Agent,
}

impl Http {
    /// POSTs `body` as JSON with extra headers; `Ok` on 2xx.
    fn post(
        &self,
        url: &str,
        body: &[u8],
        headers: &[(&str, String)],
    ) -> Result<(), DeliveryError> {
        let mut request = self
            .agent
            .post(url)
            .header("content-type", "application/json");
        for (k, v) in headers {
            request = request.header(*k, v.as_str());
        }
        // The URL may hold the secret (Slack, webhook): errors show its scheme and host only.
        let shown = redact_url(url);
        let response = request.send(body).map_err(|e| DeliveryError::Retry {
            receiver: self.name.clone(),
            message: crate::pager_tls::hint(&redact_in(&format!("POST {shown}: {e}"), url)),
            retry_after: None,
        })?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let message = format!("POST {shown} answered {status}");
        if status == 429 || status == 408 || status >= 500 {
            Err(DeliveryError::Retry {
                receiver: self.name.clone(),
                message,
                retry_after,
            })
        } else {
            Err(DeliveryError::Permanent {
                receiver: self.name.clone(),
                message,
            })
        }
    }
}

/// Builds the pager of one receiver; `secret` is the content of its `secret_file`. Fails when
/// its `ca_file` cannot be read.
pub fn build(config: &ReceiverConfig, secret: Option<String>) -> anyhow::Result<Box<dyn Pager>> {
    let http = Http {
        name: config.name.clone(),
        agent: crate::pager_tls::agent(config)?,
    };
    let url = config
        .url
        .clone()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string();
    let secret = secret.unwrap_or_default().trim().to_string();
    Ok(match config.kind {
        ReceiverKind::Alertmanager => Box::new(Alertmanager { http, url }),
        ReceiverKind::Webhook => Box::new(Webhook { http, url, secret }),
        ReceiverKind::Pagerduty => Box::new(PagerDuty {
            http,
            url: if url.is_empty() {
                "https://events.pagerduty.com".into()
            } else {
                url
            },
            routing_key: secret,
        }),
        ReceiverKind::Slack => Box::new(Slack { http, url }),
        ReceiverKind::Opsgenie => Box::new(Opsgenie {
            http,
            url: if url.is_empty() {
                "https://api.opsgenie.com".into()
            } else {
                url
            },
            api_key: secret,
        }),
    })
}

fn severity_word(s: Severity) -> &'static str {
    s.as_str()
}

fn phase_word(p: Phase) -> &'static str {
    match p {
        Phase::Firing => "firing",
        Phase::Acknowledged => "acknowledged",
        Phase::Resolved => "resolved",
    }
}

/// Prometheus Alertmanager API v2.
struct Alertmanager {
    http: Http,
    url: String,
}

/// The Alertmanager alert for one notification.
pub fn alertmanager_alert(n: &Notification, now: Timestamp) -> Value {
    let s = &n.subject;
    let mut annotations = json!({
        "summary": s.summary,
        "phase": phase_word(n.phase),
    });
    if let Some(w) = &s.workaround {
        annotations["workaround"] = json!(w);
    }
    if let Some(c) = &s.probable_cause {
        annotations["probable_cause"] = json!(c);
    }
    let mut alert = json!({
        "labels": {
            "alertname": "coldaisle",
            "id": s.key,
            "kind": match s.kind {
                crate::notify_plan::SubjectKind::Incident => "incident",
                crate::notify_plan::SubjectKind::Problem => "problem",
                crate::notify_plan::SubjectKind::SiteOutage => "site_outage",
            },
            "site": s.site,
            "zone": s.zone,
            "category": s.category,
            "severity": severity_word(s.severity),
        },
        "annotations": annotations,
        "startsAt": s.started_at.to_rfc3339(),
    });
    if n.phase == Phase::Resolved {
        alert["endsAt"] = json!(s.ended_at.unwrap_or(now).to_rfc3339());
    }
    alert
}

impl Pager for Alertmanager {
    fn name(&self) -> &str {
        &self.http.name
    }

    fn deliver(&self, batch: &[Notification], now: Timestamp) -> Result<(), DeliveryError> {
        let alerts: Vec<Value> = batch.iter().map(|n| alertmanager_alert(n, now)).collect();
        let body = serde_json::to_vec(&alerts).unwrap_or_default();
        self.http
            .post(&format!("{}/api/v2/alerts", self.url), &body, &[])
    }
}

/// The body of a generic webhook.
#[derive(Debug, Serialize)]
pub struct WebhookBody<'a> {
    /// Body format version.
    pub version: u32,
    /// Receiver name.
    pub receiver: &'a str,
    /// The notifications.
    pub notifications: &'a [Notification],
}

/// `sha256=<hex>` HMAC-SHA256 of `body` with `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length: new_from_slice cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The signature header of the generic webhook.
pub const SIGNATURE_HEADER: &str = "x-coldaisle-signature";

/// Generic webhook.
struct Webhook {
    http: Http,
    url: String,
    secret: String,
}

impl Pager for Webhook {
    fn name(&self) -> &str {
        &self.http.name
    }

    fn deliver(&self, batch: &[Notification], _now: Timestamp) -> Result<(), DeliveryError> {
        let body = serde_json::to_vec(&WebhookBody {
            version: 1,
            receiver: &self.http.name,
            notifications: batch,
        })
        .unwrap_or_default();
        let sig = signature(&self.secret, &body);
        self.http.post(&self.url, &body, &[(SIGNATURE_HEADER, sig)])
    }
}

/// PagerDuty Events API v2.
struct PagerDuty {
    http: Http,
    url: String,
    routing_key: String,
}

/// The PagerDuty Events v2 event for one notification.
pub fn pagerduty_event(routing_key: &str, n: &Notification) -> Value {
    let s = &n.subject;
    let action = match n.phase {
        Phase::Firing => "trigger",
        Phase::Acknowledged => "acknowledge",
        Phase::Resolved => "resolve",
    };
    let mut event = json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": s.key,
    });
    if n.phase == Phase::Firing {
        event["payload"] = json!({
            "summary": s.summary,
            "source": format!("coldaisle/{}/{}", s.site, s.zone),
            "severity": match s.severity {
                Severity::Critical => "critical",
                Severity::Warning => "warning",
                Severity::Info => "info",
            },
            "timestamp": s.started_at.to_rfc3339(),
            "component": s.zone,
            "group": s.site,
            "class": s.category,
            "custom_details": {
                "workaround": s.workaround,
                "probable_cause": s.probable_cause,
            },
        });
    }
    event
}

impl Pager for PagerDuty {
    fn name(&self) -> &str {
        &self.http.name
    }

    fn deliver(&self, batch: &[Notification], _now: Timestamp) -> Result<(), DeliveryError> {
        let url = format!("{}/v2/enqueue", self.url);
        for n in batch {
            let body =
                serde_json::to_vec(&pagerduty_event(&self.routing_key, n)).unwrap_or_default();
            self.http.post(&url, &body, &[])?;
        }
        Ok(())
    }
}

/// Slack incoming webhook.
struct Slack {
    http: Http,
    url: String,
}

/// The Slack message text for a batch.
pub fn slack_text(batch: &[Notification]) -> String {
    batch
        .iter()
        .map(|n| {
            let s = &n.subject;
            let mut line = format!(
                "[{}] {} ({})",
                phase_word(n.phase).to_uppercase(),
                s.summary,
                s.key
            );
            if let Some(w) = &s.workaround {
                line.push_str(&format!(" — workaround: {w}"));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Pager for Slack {
    fn name(&self) -> &str {
        &self.http.name
    }

    fn deliver(&self, batch: &[Notification], _now: Timestamp) -> Result<(), DeliveryError> {
        let body = serde_json::to_vec(&json!({ "text": slack_text(batch) })).unwrap_or_default();
        self.http.post(&self.url, &body, &[])
    }
}

/// Opsgenie / Jira Service Management alerts API.
struct Opsgenie {
    http: Http,
    url: String,
    api_key: String,
}

impl Pager for Opsgenie {
    fn name(&self) -> &str {
        &self.http.name
    }

    fn deliver(&self, batch: &[Notification], _now: Timestamp) -> Result<(), DeliveryError> {
        let auth = [("authorization", format!("GenieKey {}", self.api_key))];
        for n in batch {
            let s = &n.subject;
            let (url, body) = match n.phase {
                Phase::Firing => (
                    format!("{}/v2/alerts", self.url),
                    json!({
                        "message": s.summary,
                        "alias": s.key,
                        "description": s.probable_cause.clone().unwrap_or_default(),
                        "priority": match s.severity {
                            Severity::Critical => "P1",
                            Severity::Warning => "P3",
                            Severity::Info => "P5",
                        },
                        "tags": [s.site, s.zone, s.category],
                        "details": { "workaround": s.workaround.clone().unwrap_or_default() },
                        "source": "coldaisle",
                    }),
                ),
                Phase::Acknowledged => (
                    format!(
                        "{}/v2/alerts/{}/acknowledge?identifierType=alias",
                        self.url, s.key
                    ),
                    json!({ "source": "coldaisle" }),
                ),
                Phase::Resolved => (
                    format!(
                        "{}/v2/alerts/{}/close?identifierType=alias",
                        self.url, s.key
                    ),
                    json!({ "source": "coldaisle" }),
                ),
            };
            self.http
                .post(&url, &serde_json::to_vec(&body).unwrap_or_default(), &auth)?;
        }
        Ok(())
    }
}
