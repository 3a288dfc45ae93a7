//! Optional HTTPS for the API (`[http.tls]`): rustls with the aws-lc-rs provider (the one the
//! pagers and the MQTT client use), certificate and key from PEM files, re-read on SIGHUP
//! ([`ApiTls::reload`]: a bad file is refused and the certificate in force stays).
//!
//! [`TlsListener`] is an `axum::serve` listener: it accepts TCP connections and runs their
//! handshakes concurrently (each bounded by [`HANDSHAKE_TIMEOUT`]), so a slow or silent client
//! never holds up the others; a failed handshake is logged and dropped.

use anyhow::{Context as _, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;

/// Longest TLS handshake accepted.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The API's TLS settings in force (shared by the listener and the reload).
#[derive(Clone)]
pub struct ApiTls {
    /// PEM certificate chain.
    cert_file: PathBuf,
    /// PEM private key.
    key_file: PathBuf,
    /// The server config new handshakes use; replaced whole by a reload.
    config: Arc<RwLock<Arc<ServerConfig>>>,
}

impl std::fmt::Debug for ApiTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTls")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

/// A rustls server config from PEM files; errors name the file.
fn server_config(cert_file: &Path, key_file: &Path) -> Result<ServerConfig> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .with_context(|| format!("reading http.tls.cert_file {}", cert_file.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| {
            format!(
                "http.tls.cert_file {} is not valid PEM",
                cert_file.display()
            )
        })?;
    if certs.is_empty() {
        anyhow::bail!(
            "http.tls.cert_file {} holds no certificate",
            cert_file.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .with_context(|| format!("reading http.tls.key_file {}", key_file.display()))?;
    ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "http.tls: the key in {} does not match the certificate in {}",
                key_file.display(),
                cert_file.display()
            )
        })
}

impl ApiTls {
    /// Reads the certificate and key.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<ApiTls> {
        let config = server_config(cert_file, key_file)?;
        Ok(ApiTls {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            config: Arc::new(RwLock::new(Arc::new(config))),
        })
    }

    /// Re-reads the files; new handshakes use them, connections already open keep theirs. On an
    /// error the certificate in force stays.
    pub fn reload(&self) -> Result<()> {
        let config = Arc::new(server_config(&self.cert_file, &self.key_file)?);
        match self.config.write() {
            Ok(mut guard) => *guard = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
        Ok(())
    }

    fn current(&self) -> Arc<ServerConfig> {
        match self.config.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The `axum::serve` listener of `tcp` speaking TLS.
    pub fn listener(&self, tcp: TcpListener) -> TlsListener {
        TlsListener {
            tcp,
            tls: self.clone(),
            handshakes: JoinSet::new(),
        }
    }
}

/// TCP connections in, TLS streams out (see the module doc).
pub struct TlsListener {
    /// The bound socket.
    tcp: TcpListener,
    /// Certificates in force.
    tls: ApiTls,
    /// Handshakes under way.
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(self.tls.current());
                        self.handshakes.spawn(async move {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                                Ok(Ok(stream)) => Some((stream, peer)),
                                Ok(Err(e)) => {
                                    tracing::info!(%peer, error = %e, "API TLS handshake failed");
                                    None
                                }
                                Err(_) => {
                                    tracing::info!(%peer, "API TLS handshake timed out");
                                    None
                                }
                            }
                        });
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: wait a little, as axum does.
                        tracing::warn!(error = %e, "accepting an API connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(done) = self.handshakes.join_next() => {
                    if let Ok(Some(connection)) = done {
                        return connection;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
