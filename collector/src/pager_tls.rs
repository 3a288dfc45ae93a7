//! HTTPS for the pagers: one `ureq` agent per receiver, TLS by rustls with the aws-lc-rs crypto
//! provider (the one the MQTT client already builds, so no third crypto library), trusting the
//! system's roots (`rustls-native-certs`: `/etc/ssl/certs`, or `SSL_CERT_FILE` / `SSL_CERT_DIR`)
//! plus the receiver's optional `ca_file` (a private CA).
//!
//! Certificate failures are ordinary delivery errors: the notifier keeps the job and retries it
//! with backoff, and [`hint`] adds what to check to the error kept on the job.

use anyhow::{bail, Context, Result};
use coldaisle_config::notify::ReceiverConfig;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};

/// Makes aws-lc-rs the process's rustls provider, so that plain `ureq::get` calls (the CLI's
/// API requests) can reach an `https://` URL instead of panicking for want of a provider.
/// Idempotent; the pagers pass the provider explicitly and do not depend on it.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The system's root certificates, loaded once per process (DER).
fn system_roots() -> &'static [Certificate<'static>] {
    static ROOTS: OnceLock<Vec<Certificate<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!(error = %e, "reading a system root certificate failed; skipped");
        }
        if found.certs.is_empty() {
            tracing::warn!("no system root certificates found: https receivers need a ca_file");
        }
        found
            .certs
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect()
    })
}

/// The certificates of a PEM file; errors name the receiver and the file.
pub fn read_ca_file(receiver: &str, path: &Path) -> Result<Vec<Certificate<'static>>> {
    read_certificates(&format!("ca_file of receiver {receiver:?}"), path)
}

/// The certificates of the PEM file `path`; errors start with `what` and name the file.
pub fn read_certificates(what: &str, path: &Path) -> Result<Vec<Certificate<'static>>> {
    let pem =
        std::fs::read(path).with_context(|| format!("reading {what} from {}", path.display()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => bail!("{what} ({}) is not valid PEM: {e}", path.display()),
        }
    }
    if certs.is_empty() {
        bail!("{what} ({}) holds no certificate", path.display());
    }
    Ok(certs)
}

/// An HTTP(S) client trusting the system roots plus the certificates of `ca_file`, if any (the
/// CLI's `--ca-file`, for a collector API on a private CA); statuses are answers, not errors.
pub fn api_client(ca_file: Option<&Path>) -> Result<ureq::Agent> {
    let mut roots: Vec<Certificate<'static>> = system_roots().to_vec();
    if let Some(path) = ca_file {
        roots.extend(read_certificates("--ca-file", path)?);
    }
    Ok(client_trusting(roots, None))
}

/// An HTTP(S) client over rustls/aws-lc-rs trusting exactly `roots`, with an overall
/// `timeout` if given; statuses are answers, not errors.
fn client_trusting(
    roots: Vec<Certificate<'static>>,
    timeout: Option<std::time::Duration>,
) -> ureq::Agent {
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(RootCerts::Specific(Arc::new(roots)))
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .build();
    let config = ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(timeout)
        .build();
    ureq::Agent::new_with_config(config)
}

/// The HTTP(S) agent of one receiver: its timeout, no status-as-error (the adapters classify
/// statuses), TLS trusting the system roots and its `ca_file`.
pub fn agent(config: &ReceiverConfig) -> Result<ureq::Agent> {
    let mut roots: Vec<Certificate<'static>> = system_roots().to_vec();
    if let Some(path) = &config.ca_file {
        roots.extend(read_ca_file(&config.name, path)?);
    }
    Ok(client_trusting(roots, Some(config.timeout)))
}

/// `error` plus what to check when it is a certificate problem.
pub fn hint(error: &str) -> String {
    let lower = error.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("unknownissuer") {
        format!("{error} (TLS: the receiver's certificate is not trusted; add its CA to the system roots or to the receiver's ca_file)")
    } else {
        error.to_string()
    }
}
