//! Log output of the daemons: `text` (human, for a terminal) or `json` (one object per line,
//! for journald and log shippers); `auto` picks JSON when stderr is not a terminal or when
//! `JOURNAL_STREAM` is set (systemd connected stderr to the journal).
//!
//! The level filter sits behind a reload layer: [`LogControl::set_level`] changes it at run
//! time (the daemons call it on SIGHUP with the config's `log_level`). `RUST_LOG`, when set,
//! wins over the config at startup and on reload, so a debugging session is not undone by a
//! reload.

use anyhow::Context as _;
use std::io::IsTerminal as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// The level when neither `RUST_LOG` nor the config's `log_level` says otherwise.
pub const DEFAULT_LEVEL: &str = "info";

/// `--log-format` of both daemons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal or `JOURNAL_STREAM` is set, text otherwise.
    #[default]
    Auto,
    /// One JSON object per line (fields flattened), for journald and log shippers.
    Json,
    /// Human-readable lines.
    Text,
}

impl LogFormat {
    /// Resolves `auto` from the environment: `journal_stream` = `JOURNAL_STREAM` is set,
    /// `tty` = stderr is a terminal. Pure, so the rule is tested.
    pub fn resolve(self, journal_stream: bool, tty: bool) -> LogFormat {
        match self {
            LogFormat::Auto if journal_stream || !tty => LogFormat::Json,
            LogFormat::Auto => LogFormat::Text,
            other => other,
        }
    }
}

/// Changes the level filter of the installed subscriber.
#[derive(Debug, Clone)]
pub struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    /// `RUST_LOG` at startup: it overrides the config's level for the whole run.
    env_override: Option<String>,
}

impl LogControl {
    /// Applies `level` (an `EnvFilter` directive such as `info` or `info,coldaisle_agent=debug`;
    /// `None` = [`DEFAULT_LEVEL`]) unless `RUST_LOG` was set at startup. Returns the directive
    /// in force.
    pub fn set_level(&self, level: Option<&str>) -> anyhow::Result<String> {
        let directive = effective_directive(self.env_override.as_deref(), level);
        let filter = parse_filter(&directive)?;
        self.handle
            .reload(filter)
            .context("changing the log level")?;
        Ok(directive)
    }
}

/// Checks a level directive as the config's `log_level` (used by `check-config` and before a
/// reload is accepted).
pub fn validate_level(level: &str) -> anyhow::Result<()> {
    parse_filter(level).map(|_| ())
}

fn parse_filter(directive: &str) -> anyhow::Result<EnvFilter> {
    EnvFilter::builder()
        .parse(directive)
        .with_context(|| format!("key `log_level`: `{directive}` is not a log level or filter (e.g. `info`, `warn,coldaisle_agent=debug`)"))
}

fn effective_directive(env: Option<&str>, level: Option<&str>) -> String {
    env.or(level).unwrap_or(DEFAULT_LEVEL).to_string()
}

/// Installs the global subscriber writing to stderr. Call once, first thing in `main`.
pub fn init(format: LogFormat, level: Option<&str>) -> anyhow::Result<LogControl> {
    let env_override = std::env::var("RUST_LOG").ok().filter(|s| !s.is_empty());
    let directive = effective_directive(env_override.as_deref(), level);
    let filter = parse_filter(&directive).or_else(|_| parse_filter(DEFAULT_LEVEL))?;
    let (filter, handle) = reload::Layer::new(filter);
    let format = format.resolve(
        std::env::var_os("JOURNAL_STREAM").is_some(),
        std::io::stderr().is_terminal(),
    );
    let json = (format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(std::io::stderr)
    });
    let text = (format != LogFormat::Json)
        .then(|| tracing_subscriber::fmt::layer().with_writer(std::io::stderr));
    tracing_subscriber::registry()
        .with(filter)
        .with(json)
        .with(text)
        .try_init()
        .context("installing the logger")?;
    Ok(LogControl {
        handle,
        env_override,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_json_under_systemd_or_without_a_terminal() {
        assert_eq!(LogFormat::Auto.resolve(true, true), LogFormat::Json);
        assert_eq!(LogFormat::Auto.resolve(false, false), LogFormat::Json);
        assert_eq!(LogFormat::Auto.resolve(false, true), LogFormat::Text);
        assert_eq!(LogFormat::Text.resolve(true, false), LogFormat::Text);
        assert_eq!(LogFormat::Json.resolve(false, true), LogFormat::Json);
    }

    #[test]
    fn rust_log_wins_over_the_config() {
        assert_eq!(effective_directive(Some("debug"), Some("warn")), "debug");
        assert_eq!(effective_directive(None, Some("warn")), "warn");
        assert_eq!(effective_directive(None, None), DEFAULT_LEVEL);
    }

    #[test]
    fn bad_levels_are_rejected_with_the_key() {
        assert!(validate_level("info,coldaisle_agent=debug").is_ok());
        let e = validate_level("coldaisle=loud").unwrap_err();
        assert!(format!("{e:#}").contains("log_level"), "{e:#}");
    }
}
