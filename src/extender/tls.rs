//! TLS on the verbs port: a server certificate, and with a client CA mutual TLS, which is
//! what kube-scheduler's extender `enableHTTPS` and `tlsConfig` speak. The files are read
//! again when they change (a mounted Secret renewed by the chart or cert-manager), so a new
//! certificate or CA takes effect without a restart; a broken renewal keeps the last good one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, ensure};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use tokio_rustls::TlsAcceptor;

/// How often the files are checked for a change.
pub const RELOAD_EVERY: Duration = Duration::from_secs(10);

/// Modification time and length of each file, `None` for one that cannot be read.
type Stamp = Vec<Option<(SystemTime, u64)>>;

/// Where the verbs port's certificate, key and (for mutual TLS) client CA are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Clients must present a certificate this CA signed; `None`: no client certificates.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    fn paths(&self) -> impl Iterator<Item = &Path> {
        [self.cert.as_path(), self.key.as_path()]
            .into_iter()
            .chain(self.client_ca.as_deref())
    }

    /// Modification time and length of each file: what "changed" means.
    fn stamp(&self) -> Stamp {
        self.paths()
            .map(|p| {
                let m = std::fs::metadata(p).ok()?;
                Some((m.modified().ok()?, m.len()))
            })
            .collect()
    }
}

/// The verbs port's TLS configuration, current as of the last good read of its files.
#[derive(Debug)]
pub struct Tls {
    files: TlsFiles,
    current: RwLock<(Arc<ServerConfig>, Stamp)>,
}

impl Tls {
    /// Read the files; an error names the file and what is wrong with it.
    pub fn load(files: TlsFiles) -> anyhow::Result<Arc<Self>> {
        let stamp = files.stamp();
        let config = server_config(&files)?;
        Ok(Arc::new(Tls {
            files,
            current: RwLock::new((Arc::new(config), stamp)),
        }))
    }

    /// Whether clients must present a certificate.
    pub fn mutual(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// An acceptor with the current configuration, for one connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        TlsAcceptor::from(current.0.clone())
    }

    /// Read the files again if they changed since the last read. `Ok(true)`: a new
    /// configuration is in use; an error leaves the previous one in use.
    pub fn reload_if_changed(&self) -> anyhow::Result<bool> {
        let stamp = self.files.stamp();
        {
            let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
            if current.1 == stamp {
                return Ok(false);
            }
        }
        let result = server_config(&self.files);
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        // Noted even when broken, so that a bad renewal is reported once, not every round.
        current.1 = stamp;
        current.0 = Arc::new(result?);
        Ok(true)
    }

    /// Check the files every [`RELOAD_EVERY`] for as long as the process runs.
    pub async fn follow(self: Arc<Self>) {
        let mut tick = tokio::time::interval(RELOAD_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.reload_if_changed() {
                Ok(true) => {
                    tracing::info!(cert = %self.files.cert.display(), "TLS files changed; new connections use them")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "TLS files changed but cannot be used; keeping the previous ones")
                }
            }
        }
    }
}

fn certificates(path: &Path, what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| anyhow::anyhow!("{what} {}: {e}", path.display()))?;
    ensure!(
        !certs.is_empty(),
        "{what} {}: no PEM certificate in it",
        path.display()
    );
    Ok(certs)
}

/// The server configuration the files describe.
fn server_config(files: &TlsFiles) -> anyhow::Result<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = certificates(&files.cert, "--tls-cert-file")?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        anyhow::anyhow!(
            "--tls-private-key-file {}: no usable private key ({e})",
            files.key.display()
        )
    })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca, "--tls-client-ca-file")? {
                roots
                    .add(cert)
                    .map_err(|e| anyhow::anyhow!("--tls-client-ca-file {}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .with_context(|| format!("--tls-client-ca-file {}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).with_context(|| {
        format!(
            "--tls-cert-file {} and --tls-private-key-file {} do not make a usable pair",
            files.cert.display(),
            files.key.display()
        )
    })?;
    // HTTP/2 first: kube-scheduler's extender client offers it over TLS, and then carries
    // each extender entry's requests on one connection, instead of handshaking a new one for
    // every concurrent request beyond the two it keeps idle (see `listen.rs`).
    config.alpn_protocols = vec![H2.to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The ALPN name of HTTP/2 over TLS.
pub const H2: &[u8] = b"h2";
