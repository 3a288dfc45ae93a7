//! Operator subcommands of `coldaisle-collector` (`incident …`, `problem …`): each one calls the
//! running collector's HTTP API (see `coldaisle_collector::operator_api`) and prints its answer.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use coldaisle_config::CollectorConfig;
use serde_json::{json, Value};
use std::path::PathBuf;

/// Where the API is and who acts.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// Collector API base URL; defaults to the `http.listen` of `--config`.
    #[arg(long, global = true)]
    url: Option<String>,
    /// Collector config file (for the API address).
    #[arg(
        long,
        short,
        global = true,
        default_value = "/etc/coldaisle/collector.toml"
    )]
    config: PathBuf,
    /// Who acts (recorded on the chronicle); defaults to $USER.
    #[arg(long, global = true)]
    actor: Option<String>,
    /// When the action happened (RFC 3339); defaults to the collector's now.
    #[arg(long, global = true)]
    at: Option<String>,
}

/// `incident …` subcommands.
#[derive(Debug, Subcommand)]
pub enum IncidentCommand {
    /// Acknowledge an incident.
    Ack {
        /// Incident id.
        id: String,
    },
    /// Add a note to an incident's chronicle.
    Note {
        /// Incident id.
        id: String,
        /// The note.
        text: String,
    },
    /// Resolve an incident by hand.
    Resolve {
        /// Incident id.
        id: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Mark an incident SLA-impacting (it opens or joins a problem).
    Sla {
        /// Incident id.
        id: String,
    },
    /// Print an incident's Markdown postmortem.
    Postmortem {
        /// Incident id.
        id: String,
    },
}

/// `problem …` subcommands.
#[derive(Debug, Subcommand)]
pub enum ProblemCommand {
    /// Move a problem in its lifecycle: open, investigating, known_error, resolved.
    SetStatus {
        /// Problem id.
        id: String,
        /// New status.
        status: String,
    },
    /// Record root cause and workaround (the problem becomes a known error).
    RootCause {
        /// Problem id.
        id: String,
        /// The root cause.
        #[arg(long)]
        root_cause: String,
        /// The workaround.
        #[arg(long)]
        workaround: String,
    },
    /// Add a note to a problem's history.
    Note {
        /// Problem id.
        id: String,
        /// The note.
        text: String,
    },
    /// Print a problem's Markdown postmortem.
    Postmortem {
        /// Problem id.
        id: String,
    },
}

impl ApiArgs {
    fn base(&self) -> anyhow::Result<String> {
        Ok(match &self.url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => {
                let config = CollectorConfig::load(&self.config)
                    .context("reading the API address (or pass --url)")?;
                format!("http://{}", config.raw.http.listen)
            }
        })
    }

    fn actor(&self) -> anyhow::Result<String> {
        self.actor
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .filter(|a| !a.trim().is_empty())
            .context("no actor: pass --actor NAME (or set $USER)")
    }

    /// A body with `actor`, `at` and the given fields.
    fn body(&self, fields: Value) -> anyhow::Result<Value> {
        let mut body = json!({ "actor": self.actor()? });
        if let Some(at) = &self.at {
            body["at"] = json!(at);
        }
        if let (Some(map), Value::Object(extra)) = (body.as_object_mut(), fields) {
            map.extend(extra);
        }
        Ok(body)
    }
}

/// Sends one request; returns the body on success, the API's error message otherwise.
fn call(base: &str, path: &str, body: Option<&Value>) -> anyhow::Result<String> {
    let url = format!("{base}{path}");
    let mut response = match body {
        Some(body) => ureq::post(&url)
            .config()
            .http_status_as_error(false)
            .build()
            .header("content-type", "application/json")
            .send(body.to_string()),
        None => ureq::get(&url)
            .config()
            .http_status_as_error(false)
            .build()
            .call(),
    }
    .with_context(|| format!("asking the collector at {base}"))?;
    let status = response.status();
    let text = response
        .body_mut()
        .read_to_string()
        .context("reading the collector's answer")?;
    if !status.is_success() {
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or(text);
        anyhow::bail!("collector answered {status}: {message}");
    }
    Ok(text)
}

/// Runs an `incident` subcommand.
pub fn incident(command: IncidentCommand, api: &ApiArgs) -> anyhow::Result<()> {
    let base = api.base()?;
    let (path, body) = match command {
        IncidentCommand::Ack { id } => (
            format!("/api/v1/incidents/{id}/ack"),
            Some(api.body(json!({}))?),
        ),
        IncidentCommand::Note { id, text } => (
            format!("/api/v1/incidents/{id}/notes"),
            Some(api.body(json!({ "text": text }))?),
        ),
        IncidentCommand::Resolve { id, reason } => (
            format!("/api/v1/incidents/{id}/resolve"),
            Some(api.body(json!({ "reason": reason }))?),
        ),
        IncidentCommand::Sla { id } => (
            format!("/api/v1/incidents/{id}/sla"),
            Some(api.body(json!({}))?),
        ),
        IncidentCommand::Postmortem { id } => {
            (format!("/api/v1/incidents/{id}/postmortem.md"), None)
        }
    };
    print!("{}", pretty(call(&base, &path, body.as_ref())?));
    Ok(())
}

/// Runs a `problem` subcommand.
pub fn problem(command: ProblemCommand, api: &ApiArgs) -> anyhow::Result<()> {
    let base = api.base()?;
    let (path, body) = match command {
        ProblemCommand::SetStatus { id, status } => (
            format!("/api/v1/problems/{id}/status"),
            Some(api.body(json!({ "status": status }))?),
        ),
        ProblemCommand::RootCause {
            id,
            root_cause,
            workaround,
        } => (
            format!("/api/v1/problems/{id}/root-cause"),
            Some(api.body(json!({ "root_cause": root_cause, "workaround": workaround }))?),
        ),
        ProblemCommand::Note { id, text } => (
            format!("/api/v1/problems/{id}/notes"),
            Some(api.body(json!({ "text": text }))?),
        ),
        ProblemCommand::Postmortem { id } => (format!("/api/v1/problems/{id}/postmortem.md"), None),
    };
    print!("{}", pretty(call(&base, &path, body.as_ref())?));
    Ok(())
}

/// JSON answers pretty-printed with a final newline; Markdown as is.
fn pretty(text: String) -> String {
    match serde_json::from_str::<Value>(&text) {
        Ok(v) => format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or(text)),
        Err(_) => text,
    }
}

/// `silence …` subcommands.
#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Silence pages for a site, zone and/or category, now or as a maintenance window.
    Add {
        /// Site to match (default: any).
        #[arg(long)]
        site: Option<String>,
        /// Zone to match (default: any).
        #[arg(long)]
        zone: Option<String>,
        /// Category to match: thermal, humidity, cooling, power, device (default: any).
        #[arg(long)]
        category: Option<String>,
        /// Start (RFC 3339); default now. A future start makes a maintenance window.
        #[arg(long)]
        starts_at: Option<String>,
        /// Length, e.g. `2h` (or give --ends-at).
        #[arg(long)]
        duration: Option<String>,
        /// End (RFC 3339).
        #[arg(long)]
        ends_at: Option<String>,
        /// Why.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// List silences.
    List,
}

/// Runs a `silence` subcommand.
pub fn silence(command: SilenceCommand, api: &ApiArgs) -> anyhow::Result<()> {
    let base = api.base()?;
    let body = match command {
        SilenceCommand::List => None,
        SilenceCommand::Add {
            site,
            zone,
            category,
            starts_at,
            duration,
            ends_at,
            comment,
        } => {
            let mut body = json!({ "created_by": api.actor()?, "comment": comment });
            for (key, value) in [
                ("site", site),
                ("zone", zone),
                ("category", category),
                ("starts_at", starts_at),
                ("duration", duration),
                ("ends_at", ends_at),
            ] {
                if let Some(v) = value {
                    body[key] = json!(v);
                }
            }
            Some(body)
        }
    };
    print!(
        "{}",
        pretty(call(&base, "/api/v1/silences", body.as_ref())?)
    );
    Ok(())
}
