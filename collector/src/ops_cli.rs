//! Operator subcommands of `coldaisle-collector` (`incident …`, `problem …`, `silence …`,
//! `report`): each one calls the running collector's HTTP API (see
//! `coldaisle_collector::operator_api`) and prints its answer. [`ApiClient`] sends the bearer
//! token of `--token-file`, `$COLDAISLE_API_TOKEN_FILE` or `$COLDAISLE_API_TOKEN` (in that
//! order); `token new` makes a token and its tokens-file line.

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
    /// File holding the API bearer token (first line); or set $COLDAISLE_API_TOKEN_FILE or
    /// $COLDAISLE_API_TOKEN.
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
    /// PEM file of CA certificates to trust for an HTTPS API (besides the system's); or set
    /// $COLDAISLE_API_CA_FILE.
    #[arg(long, global = true)]
    ca_file: Option<PathBuf>,
    /// Who acts, on an API without tokens (recorded on the chronicle); defaults to $USER.
    /// With a token the actor is the token's name.
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

/// Environment variable holding an API token.
pub const TOKEN_ENV: &str = "COLDAISLE_API_TOKEN";
/// Environment variable naming a file that holds an API token.
pub const TOKEN_FILE_ENV: &str = "COLDAISLE_API_TOKEN_FILE";
/// Environment variable naming a PEM file of CA certificates the CLI trusts for the API.
pub const CA_FILE_ENV: &str = "COLDAISLE_API_CA_FILE";

/// The collector API as the CLI reaches it: base URL and the bearer token, if any.
pub struct ApiClient {
    /// Base URL without a trailing `/`.
    base: String,
    /// Bearer token.
    token: Option<String>,
    /// The HTTP client (trusting `--ca-file` too, when given).
    http: ureq::Agent,
}

impl ApiClient {
    /// The API at `url`, or at the `http.listen` of the config file; the token from
    /// `token_file`, else the environment.
    pub fn new(
        url: Option<&str>,
        config: &std::path::Path,
        token_file: Option<&std::path::Path>,
    ) -> anyhow::Result<ApiClient> {
        let base = match url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => {
                let config = CollectorConfig::load(config)
                    .context("reading the API address (or pass --url)")?;
                let scheme = if config.raw.http.tls.is_some() {
                    "https"
                } else {
                    "http"
                };
                format!("{scheme}://{}", config.raw.http.listen)
            }
        };
        let env_file = std::env::var_os(TOKEN_FILE_ENV).map(PathBuf::from);
        let token = match token_file.map(PathBuf::from).or(env_file) {
            Some(path) => Some(read_token(&path)?),
            None => std::env::var(TOKEN_ENV)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
        };
        let http = coldaisle_collector::pager_tls::api_client(None)?;
        Ok(ApiClient { base, token, http })
    }

    /// Trusts the CA certificates of `ca_file` (else of `$COLDAISLE_API_CA_FILE`) besides the
    /// system roots: for an API served over HTTPS with a certificate of a private CA.
    pub fn with_ca_file(mut self, ca_file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let env_file = std::env::var_os(CA_FILE_ENV).map(PathBuf::from);
        if let Some(path) = ca_file.map(PathBuf::from).or(env_file) {
            self.http = coldaisle_collector::pager_tls::api_client(Some(&path))?;
        }
        Ok(self)
    }

    /// Whether a token is sent (the actor is then the token's name).
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Sends one request; returns the body on success, the API's error message otherwise.
    pub fn call(&self, path: &str, body: Option<&Value>) -> anyhow::Result<String> {
        let url = format!("{}{path}", self.base);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut response = match body {
            Some(body) => {
                let mut request = self
                    .http
                    .post(&url)
                    .header("content-type", "application/json");
                if let Some(auth) = &auth {
                    request = request.header("authorization", auth);
                }
                request.send(body.to_string())
            }
            None => {
                let mut request = self.http.get(&url);
                if let Some(auth) = &auth {
                    request = request.header("authorization", auth);
                }
                request.call()
            }
        }
        .with_context(|| format!("asking the collector at {}", self.base))?;
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
            let hint = match (status.as_u16(), self.has_token()) {
                (401, false) => format!(" (pass --token-file or set ${TOKEN_ENV})"),
                _ => String::new(),
            };
            anyhow::bail!("collector answered {status}: {message}{hint}");
        }
        Ok(text)
    }
}

/// The token in `path`: its first line, trimmed.
fn read_token(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the API token from {}", path.display()))?;
    let token = text.lines().next().unwrap_or_default().trim().to_string();
    if token.is_empty() {
        anyhow::bail!("{}: holds no token (first line empty)", path.display());
    }
    Ok(token)
}

impl ApiArgs {
    fn client(&self) -> anyhow::Result<ApiClient> {
        ApiClient::new(
            self.url.as_deref(),
            &self.config,
            self.token_file.as_deref(),
        )?
        .with_ca_file(self.ca_file.as_deref())
    }

    /// The actor to name in a body: `--actor`, or `$USER` when no token names the caller.
    fn actor(&self, client: &ApiClient) -> anyhow::Result<Option<String>> {
        if let Some(actor) = self.actor.clone().filter(|a| !a.trim().is_empty()) {
            return Ok(Some(actor));
        }
        if client.has_token() {
            return Ok(None);
        }
        std::env::var("USER")
            .ok()
            .filter(|a| !a.trim().is_empty())
            .map(Some)
            .context("no actor: pass --actor NAME (or set $USER), or use a token")
    }

    /// A body with `actor` (when named), `at` and the given fields.
    fn body(&self, client: &ApiClient, fields: Value) -> anyhow::Result<Value> {
        let mut body = json!({});
        if let Some(actor) = self.actor(client)? {
            body["actor"] = json!(actor);
        }
        if let Some(at) = &self.at {
            body["at"] = json!(at);
        }
        if let (Some(map), Value::Object(extra)) = (body.as_object_mut(), fields) {
            map.extend(extra);
        }
        Ok(body)
    }
}

/// Runs an `incident` subcommand.
pub fn incident(command: IncidentCommand, api: &ApiArgs) -> anyhow::Result<()> {
    let client = api.client()?;
    let (path, body) = match command {
        IncidentCommand::Ack { id } => (
            format!("/api/v1/incidents/{id}/ack"),
            Some(api.body(&client, json!({}))?),
        ),
        IncidentCommand::Note { id, text } => (
            format!("/api/v1/incidents/{id}/notes"),
            Some(api.body(&client, json!({ "text": text }))?),
        ),
        IncidentCommand::Resolve { id, reason } => (
            format!("/api/v1/incidents/{id}/resolve"),
            Some(api.body(&client, json!({ "reason": reason }))?),
        ),
        IncidentCommand::Sla { id } => (
            format!("/api/v1/incidents/{id}/sla"),
            Some(api.body(&client, json!({}))?),
        ),
        IncidentCommand::Postmortem { id } => {
            (format!("/api/v1/incidents/{id}/postmortem.md"), None)
        }
    };
    print!("{}", pretty(client.call(&path, body.as_ref())?));
    Ok(())
}

/// Runs a `problem` subcommand.
pub fn problem(command: ProblemCommand, api: &ApiArgs) -> anyhow::Result<()> {
    let client = api.client()?;
    let (path, body) = match command {
        ProblemCommand::SetStatus { id, status } => (
            format!("/api/v1/problems/{id}/status"),
            Some(api.body(&client, json!({ "status": status }))?),
        ),
        ProblemCommand::RootCause {
            id,
            root_cause,
            workaround,
        } => (
            format!("/api/v1/problems/{id}/root-cause"),
            Some(api.body(
                &client,
                json!({ "root_cause": root_cause, "workaround": workaround }),
            )?),
        ),
        ProblemCommand::Note { id, text } => (
            format!("/api/v1/problems/{id}/notes"),
            Some(api.body(&client, json!({ "text": text }))?),
        ),
        ProblemCommand::Postmortem { id } => (format!("/api/v1/problems/{id}/postmortem.md"), None),
    };
    print!("{}", pretty(client.call(&path, body.as_ref())?));
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
    let client = api.client()?;
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
            let mut body = json!({ "comment": comment });
            if let Some(actor) = api.actor(&client)? {
                body["created_by"] = json!(actor);
            }
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
        pretty(client.call("/api/v1/silences", body.as_ref())?)
    );
    Ok(())
}
