//! Pager settings of the collector (`[notify]`): receivers (pager endpoints), routes that pick
//! which incidents and problems go to which receiver, and the noise controls.

use crate::error::{KeyPath, Problem};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The `[notify]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Pager endpoints.
    #[serde(default)]
    pub receivers: Vec<ReceiverConfig>,
    /// Which notifications go where; a notification goes to every matching route's receiver.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// A still-firing incident is notified again this often (Alertmanager needs it below its
    /// `resolve_timeout`, 5m by default).
    #[serde(default = "default_repeat", with = "humantime_serde")]
    pub repeat_interval: Duration,
    /// How often the notifier compares incidents with what was sent.
    #[serde(default = "default_tick", with = "humantime_serde")]
    pub interval: Duration,
    /// First retry delay of a failed delivery; doubles on each failure up to `retry_max`.
    #[serde(default = "default_retry_initial", with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest retry delay.
    #[serde(default = "default_retry_max", with = "humantime_serde")]
    pub retry_max: Duration,
    /// A fingerprint with at least this many incidents opened within `flap_window` is flapping:
    /// its new incidents are not paged (0 disables).
    #[serde(default = "default_flap_threshold")]
    pub flap_threshold: usize,
    /// Window of the flap rule.
    #[serde(default = "default_flap_window", with = "humantime_serde")]
    pub flap_window: Duration,
    /// When at least this many zones of one site have open incidents, the site is having an
    /// outage: one site notification replaces its zones' ones (0 disables).
    #[serde(default = "default_site_outage_zones")]
    pub site_outage_zones: usize,
}

fn default_repeat() -> Duration {
    Duration::from_secs(4 * 60)
}
fn default_tick() -> Duration {
    Duration::from_secs(1)
}
fn default_retry_initial() -> Duration {
    Duration::from_secs(1)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(300)
}
fn default_flap_threshold() -> usize {
    4
}
fn default_flap_window() -> Duration {
    Duration::from_secs(3600)
}
fn default_site_outage_zones() -> usize {
    3
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            receivers: Vec::new(),
            routes: Vec::new(),
            repeat_interval: default_repeat(),
            interval: default_tick(),
            retry_initial: default_retry_initial(),
            retry_max: default_retry_max(),
            flap_threshold: default_flap_threshold(),
            flap_window: default_flap_window(),
            site_outage_zones: default_site_outage_zones(),
        }
    }
}

/// Kinds of pager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiverKind {
    /// Prometheus Alertmanager API v2 (`url` is the Alertmanager base URL).
    Alertmanager,
    /// Generic webhook: JSON body, `X-Coldaisle-Signature: sha256=<hex>` HMAC of the body with
    /// the secret.
    Webhook,
    /// PagerDuty Events API v2 (`url` defaults to `https://events.pagerduty.com`; the secret is
    /// the routing key).
    Pagerduty,
    /// Slack incoming webhook (`url` is the webhook URL).
    Slack,
    /// Opsgenie / Jira Service Management alerts API (`url` defaults to
    /// `https://api.opsgenie.com`; the secret is the API key).
    Opsgenie,
}

/// One pager endpoint. Its `Debug` output shows the URL's scheme and host only
/// ([`redact_url`]): a Slack or webhook URL is itself a secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Name routes refer to.
    pub name: String,
    /// Which API it speaks.
    pub kind: ReceiverKind,
    /// Base URL (Alertmanager, PagerDuty, Opsgenie) or full URL (webhook, Slack).
    #[serde(default)]
    pub url: Option<String>,
    /// File holding the URL (first line), read at startup: keeps a Slack or webhook URL, which
    /// is a secret, out of the config. Exclusive with `url`.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// File holding the secret (HMAC key, routing key, API key), read at startup, never logged.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Request timeout.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// PEM file of extra CA certificates trusted for this receiver's `https://` URL (a private
    /// CA), on top of the system's roots; read at startup.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for ReceiverConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.url.as_deref().map(redact_url))
            .field("url_file", &self.url_file)
            .field("secret_file", &self.secret_file)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// A URL fit for logs, errors and the API: scheme, host and port, with the path, query and any
/// user info replaced by `<redacted>` (a Slack or webhook URL carries its secret in the path).
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme, rest),
        None => return "<redacted>".into(),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if rest.len() > authority.len() || authority.contains('@') {
        format!("{scheme}://{host}/<redacted>")
    } else {
        format!("{scheme}://{host}")
    }
}

/// Replaces every occurrence of `url` in `text` by [`redact_url`] of it (for error texts of
/// HTTP clients, which may quote the URL).
pub fn redact_in(text: &str, url: &str) -> String {
    if url.is_empty() {
        return text.to_string();
    }
    text.replace(url, &redact_url(url))
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// One routing rule: empty lists match everything.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Receiver name.
    pub receiver: String,
    /// Sites to match.
    #[serde(default)]
    pub sites: Vec<String>,
    /// Zones to match.
    #[serde(default)]
    pub zones: Vec<String>,
    /// Categories to match (`thermal`, `humidity`, `cooling`, `power`, `device`).
    #[serde(default)]
    pub categories: Vec<String>,
    /// Lowest severity to notify (`info`, `warning`, `critical`).
    #[serde(default = "default_min_severity")]
    pub min_severity: String,
    /// Notify incidents.
    #[serde(default = "yes")]
    pub incidents: bool,
    /// Notify problems (opened, reopened, resolved).
    #[serde(default)]
    pub problems: bool,
}

fn default_min_severity() -> String {
    "warning".to_string()
}
fn yes() -> bool {
    true
}

/// Checks names, references and values of `[notify]`.
pub(crate) fn validate(notify: &NotifyConfig, root: &KeyPath) -> Result<(), Problem> {
    let root = root.key("notify");
    for (i, r) in notify.receivers.iter().enumerate() {
        let key = root.key("receivers").index(i);
        if r.name.trim().is_empty() {
            return Err(Problem::new(key.key("name"), "must not be empty"));
        }
        if notify.receivers[..i].iter().any(|o| o.name == r.name) {
            return Err(Problem::new(
                key.key("name"),
                format!("receiver {:?} is defined twice", r.name),
            ));
        }
        let needs_url = matches!(
            r.kind,
            ReceiverKind::Alertmanager | ReceiverKind::Webhook | ReceiverKind::Slack
        );
        if r.url.is_some() && r.url_file.is_some() {
            return Err(Problem::new(
                key.key("url_file"),
                "give url or url_file, not both",
            ));
        }
        if needs_url && r.url.is_none() && r.url_file.is_none() {
            return Err(Problem::new(
                key.key("url"),
                "is required for this kind of receiver (or url_file, for a URL that is a secret)",
            ));
        }
        if let Some(url) = &r.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(Problem::new(
                    key.key("url"),
                    "must start with http:// or https://",
                ));
            }
        }
        if r.ca_file.is_some()
            && r.url_file.is_none()
            && !r
                .url
                .as_deref()
                .unwrap_or("https://")
                .starts_with("https://")
        {
            return Err(Problem::new(
                key.key("ca_file"),
                "only applies to an https:// url",
            ));
        }
        let needs_secret = matches!(
            r.kind,
            ReceiverKind::Webhook | ReceiverKind::Pagerduty | ReceiverKind::Opsgenie
        );
        if needs_secret && r.secret_file.is_none() {
            return Err(Problem::new(
                key.key("secret_file"),
                "is required for this kind of receiver (HMAC key, routing key or API key)",
            ));
        }
    }
    for (i, route) in notify.routes.iter().enumerate() {
        let key = root.key("routes").index(i);
        if !notify.receivers.iter().any(|r| r.name == route.receiver) {
            return Err(Problem::new(
                key.key("receiver"),
                format!(
                    "no receiver named {:?} in [[notify.receivers]]",
                    route.receiver
                ),
            ));
        }
        if !["info", "warning", "critical"].contains(&route.min_severity.as_str()) {
            return Err(Problem::new(
                key.key("min_severity"),
                "must be info, warning or critical",
            ));
        }
        for (j, c) in route.categories.iter().enumerate() {
            if !["thermal", "humidity", "cooling", "power", "device"].contains(&c.as_str()) {
                return Err(Problem::new(
                    key.key("categories").index(j),
                    "must be thermal, humidity, cooling, power or device",
                ));
            }
        }
    }
    if notify.retry_initial.is_zero() || notify.retry_max < notify.retry_initial {
        return Err(Problem::new(
            root.key("retry_max"),
            "retry_initial must be above zero and retry_max at least retry_initial",
        ));
    }
    if notify.interval.is_zero() {
        return Err(Problem::new(root.key("interval"), "must be above zero"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::CollectorConfig;
    use std::path::Path;

    const BASE: &str = r#"
collector_id = "c1"
state_dir = "/tmp/x"
[mqtt]
host = "127.0.0.1"
"#;

    fn load(extra: &str) -> Result<CollectorConfig, String> {
        CollectorConfig::from_str(&format!("{BASE}{extra}"), Path::new("collector.toml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn receivers_and_routes_load_with_defaults() {
        let c = load(
            r#"
[notify]
repeat_interval = "10m"
[[notify.receivers]]
name = "am"
kind = "alertmanager"
url = "http://127.0.0.1:9093"
[[notify.routes]]
receiver = "am"
zones = ["Z1"]
categories = ["thermal"]
"#,
        )
        .unwrap();
        let n = &c.raw.notify;
        assert_eq!(n.repeat_interval.as_secs(), 600);
        assert_eq!(n.flap_threshold, 4);
        assert_eq!(n.routes[0].min_severity, "warning");
        assert!(n.routes[0].incidents && !n.routes[0].problems);
        assert!(load("").unwrap().raw.notify.routes.is_empty());
    }

    #[test]
    fn receiver_ca_file_and_problem_row_scope_load() {
        let c = load(
            r#"
[problems]
scope = "row"
[[notify.receivers]]
name = "pd"
kind = "pagerduty"
url = "https://events.example.net"
secret_file = "/etc/coldaisle/pd.key"
ca_file = "/etc/coldaisle/private-ca.pem"
"#,
        )
        .unwrap();
        assert_eq!(
            c.raw.problems.scope,
            crate::collector::ProblemScopeConfig::Row
        );
        assert_eq!(
            c.raw.notify.receivers[0].ca_file.as_deref(),
            Some(Path::new("/etc/coldaisle/private-ca.pem"))
        );
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                "[[notify.routes]]\nreceiver = \"nope\"\n",
                "notify.routes[0].receiver",
            ),
            (
                "[[notify.receivers]]\nname = \"w\"\nkind = \"webhook\"\nurl = \"http://x\"\n",
                "notify.receivers[0].secret_file",
            ),
            (
                "[[notify.receivers]]\nname = \"s\"\nkind = \"slack\"\n",
                "notify.receivers[0].url",
            ),
            (
                "[[notify.receivers]]\nname = \"a\"\nkind = \"alertmanager\"\nurl = \"ftp://x\"\n",
                "notify.receivers[0].url",
            ),
            (
                "[[notify.receivers]]\nname = \"a\"\nkind = \"alertmanager\"\nurl = \"http://x\"\n[[notify.routes]]\nreceiver = \"a\"\nmin_severity = \"loud\"\n",
                "notify.routes[0].min_severity",
            ),
            (
                "[[notify.receivers]]\nname = \"a\"\nkind = \"alertmanager\"\nurl = \"http://x\"\nca_file = \"/ca.pem\"\n",
                "notify.receivers[0].ca_file",
            ),
            (
                "[[notify.receivers]]\nname = \"a\"\nkind = \"pager\"\n",
                "collector.toml:8:8: unknown variant `pager`",
            ),
        ];
        for (extra, key) in cases {
            let err = load(extra).unwrap_err();
            assert!(err.contains(key), "{extra}: {err}");
        }
    }

    #[test]
    fn urls_are_redacted_to_scheme_and_host() {
        use super::{redact_in, redact_url};
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0/B0/xyz"),
            "https://hooks.slack.com/<redacted>"
        );
        assert_eq!(redact_url("http://am:9093"), "http://am:9093");
        assert_eq!(redact_url("https://u:pw@h/"), "https://h/<redacted>");
        assert_eq!(redact_url("https://h?k=v"), "https://h/<redacted>");
        assert_eq!(redact_url("not a url"), "<redacted>");
        assert_eq!(
            redact_in(
                "error sending to https://h/s3cret: refused",
                "https://h/s3cret"
            ),
            "error sending to https://h/<redacted>: refused"
        );
    }

    #[test]
    fn url_file_replaces_an_inline_url() {
        let c = load(
            r#"
[[notify.receivers]]
name = "slack"
kind = "slack"
url_file = "/etc/coldaisle/slack.url"
"#,
        );
        assert!(c.is_ok(), "{c:?}");
        let e = load(
            r#"
[[notify.receivers]]
name = "slack"
kind = "slack"
url = "https://hooks.slack.com/x"
url_file = "/etc/coldaisle/slack.url"
"#,
        )
        .unwrap_err();
        assert!(e.contains("give url or url_file, not both"), "{e}");
    }
}
