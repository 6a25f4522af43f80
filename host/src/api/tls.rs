//! TLS for a controller beyond loopback, with rustls (ring as the one crypto
//! provider: no openssl, no aws-lc).
//!
//! Invariants:
//! - The server's certificate is either the user's (`--tls-cert/--tls-key`,
//!   PEM) or a self-signed one generated once with `rcgen` and kept beside
//!   the connection file (`cluster.crt`, `cluster.key` mode 0600), so a
//!   restarted controller keeps its fingerprint and engines waiting to
//!   reconnect still trust it.
//! - The fingerprint (`sha256:<hex of the DER leaf certificate>`) goes in the
//!   connection file. A client given a fingerprint accepts exactly that
//!   certificate (names and dates are not checked: the pin is the trust) and
//!   nothing else; a client given none verifies normally against the Mozilla
//!   roots (`webpki-roots`).
//! - Handshakes run off the accept loop (one task each, with a deadline), so
//!   a client that connects and sends nothing — or plain HTTP — delays no one.

use std::fmt;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::{Error, Result};

/// Where the server's certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// Generated once and kept beside the connection file (`--tls`).
    SelfSigned,
    /// The user's PEM files (`--tls-cert`, `--tls-key`).
    Files { cert: PathBuf, key: PathBuf },
}

/// How long a client has to finish its handshake.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// The one crypto provider, named explicitly: rustls cannot pick a process
/// default when more than one is compiled in.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `sha256:<hex>` of a DER certificate: what the connection file pins.
pub fn fingerprint(der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(der)))
}

/// The server's rustls configuration and its certificate's fingerprint.
pub fn server_config(source: &TlsSource, connection_file: &Path, listen: IpAddr) -> Result<(Arc<rustls::ServerConfig>, String)> {
    let (cert_path, key_path) = match source {
        TlsSource::Files { cert, key } => (cert.clone(), key.clone()),
        TlsSource::SelfSigned => {
            let paths = (connection_file.with_extension("crt"), connection_file.with_extension("key"));
            if !(paths.0.exists() && paths.1.exists()) {
                generate_self_signed(&paths.0, &paths.1, listen)?;
            }
            paths
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|it| it.collect::<std::result::Result<_, _>>())
        .map_err(|e| Error::BadRequest(format!("cannot read the TLS certificate {}: {e}", cert_path.display())))?;
    let leaf = certs.first().ok_or_else(|| Error::BadRequest(format!("no certificate in {}", cert_path.display())))?;
    let fp = fingerprint(leaf);
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| Error::BadRequest(format!("cannot read the TLS key {}: {e}", key_path.display())))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS set-up: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            Error::BadRequest(format!("the TLS certificate {} and key {} do not fit: {e}", cert_path.display(), key_path.display()))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), fp))
}

/// A self-signed certificate for localhost, this host's name and `listen`;
/// the key is written with mode 0600 before any byte of it.
fn generate_self_signed(cert_path: &Path, key_path: &Path, listen: IpAddr) -> Result<()> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), crate::engine::hostname()];
    if !listen.is_unspecified() {
        names.push(listen.to_string());
    }
    names.dedup();
    let certified =
        rcgen::generate_simple_self_signed(names).map_err(|e| Error::Internal(format!("cannot generate a TLS certificate: {e}")))?;
    let write = |path: &Path, mode: u32, text: &str| -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write(key_path, 0o600, &certified.key_pair.serialize_pem())
        .map_err(|e| Error::BadRequest(format!("cannot write the TLS key {}: {e}", key_path.display())))?;
    write(cert_path, 0o644, &certified.cert.pem())
        .map_err(|e| Error::BadRequest(format!("cannot write the TLS certificate {}: {e}", cert_path.display())))?;
    tracing::info!(cert = %cert_path.display(), key = %key_path.display(), "generated a self-signed TLS certificate");
    Ok(())
}

/// A listener whose connections have finished a TLS handshake, for
/// `axum::serve`. Accepting and handshaking happen in a task of their own.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    accept_loop: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, ready) = mpsc::channel(64);
        let accept_loop = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(ok) => ok,
                    Err(e) => {
                        // Out of descriptors and the like: wait rather than spin.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::info!(%peer, error = %e, "refused a connection: no TLS handshake (plain HTTP to a TLS port?)")
                        }
                        Err(_) => tracing::info!(%peer, "refused a connection: no TLS handshake within {HANDSHAKE_DEADLINE:?}"),
                    }
                });
            }
        });
        Ok(TlsListener { local, ready, accept_loop })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop only ends when this listener drops it.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// What a client's rustls configuration is for `fingerprint`: one that
/// accepts exactly that certificate, or `None` for normal verification.
pub fn client_config(fingerprint: Option<&str>) -> Result<Option<rustls::ClientConfig>> {
    let Some(fp) = fingerprint else { return Ok(None) };
    let expected = fp.trim().to_ascii_lowercase();
    let ok = expected.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()));
    if !ok {
        return Err(Error::BadRequest(format!("tls_fingerprint {fp:?} is not sha256:<64 hex digits>")));
    }
    let provider = provider();
    let verifier = Arc::new(PinnedCertificate { expected, provider: provider.clone() });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS set-up: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(config))
}

/// The words a refused pin is reported with.
pub const PIN_MISMATCH: &str = "does not match the pinned fingerprint";

struct Mismatch {
    got: String,
    expected: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{MISMATCH_HEAD}{} {PIN_MISMATCH} {} in the connection file {MISMATCH_TAIL}", self.got, self.expected)
    }
}

// rustls shows the cause with `{:?}`: the same plain words, so the message
// survives every wrapper between rustls and the caller.
impl fmt::Debug for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Mismatch {}

const MISMATCH_HEAD: &str = "the controller's TLS certificate ";
const MISMATCH_TAIL: &str = "(a different controller, or an old file?)";

/// The refused pin under `err`, said plainly, if that is what `err` is.
/// (rustls reports it as `InvalidCertificate(Other(..))`, wrapped in an
/// `io::Error` and then in the HTTP or WebSocket client's error.)
pub fn pin_mismatch(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    fn from_rustls(e: &(dyn std::error::Error + 'static)) -> Option<String> {
        match e.downcast_ref::<rustls::Error>()? {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => {
                other.0.downcast_ref::<Mismatch>().map(|m| m.to_string())
            }
            _ => None,
        }
    }
    let mut e = Some(err);
    while let Some(cur) = e {
        let inner = cur.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).map(|i| i as &(dyn std::error::Error + 'static));
        if let Some(found) = from_rustls(cur).or_else(|| inner.and_then(from_rustls)) {
            return Some(found);
        }
        // Behind a wrapper that hides the type (a boxed box): by its words.
        let text = cur.to_string();
        if let (Some(start), Some(end)) = (text.find(MISMATCH_HEAD), text.find(MISMATCH_TAIL)) {
            if start < end && text.contains(PIN_MISMATCH) {
                return Some(text[start..end + MISMATCH_TAIL.len()].to_string());
            }
        }
        e = cur.source();
    }
    None
}

/// An error and its causes on one line (`a: b: c`), leaving out any message
/// another one already contains.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut all = Vec::new();
    let mut e = Some(err);
    while let Some(cur) = e {
        all.push(cur.to_string());
        e = cur.source();
    }
    let kept: Vec<&String> = all
        .iter()
        .enumerate()
        .filter(|(i, m)| !all.iter().enumerate().any(|(j, o)| j != *i && o.contains(m.as_str()) && (o != *m || j < *i)))
        .map(|(_, m)| m)
        .collect();
    kept.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(": ")
}

/// Accepts exactly one certificate, by its SHA-256; signatures are still
/// checked, so the peer must hold that certificate's key.
#[derive(Debug)]
struct PinnedCertificate {
    expected: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let got = fingerprint(end_entity);
        if got == self.expected {
            return Ok(ServerCertVerified::assertion());
        }
        let mismatch = Mismatch { got, expected: self.expected.clone() };
        Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(Arc::new(mismatch)))))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_is_kept_and_its_key_is_private() {
        let dir = tempfile::tempdir().expect("temp dir");
        let conn = dir.path().join("cluster.json");
        let (_, first) = server_config(&TlsSource::SelfSigned, &conn, IpAddr::from([127, 0, 0, 1])).expect("first");
        let (_, again) = server_config(&TlsSource::SelfSigned, &conn, IpAddr::from([127, 0, 0, 1])).expect("again");
        assert_eq!(first, again, "a restarted controller keeps its certificate");
        assert!(first.starts_with("sha256:") && first.len() == 7 + 64, "{first}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(conn.with_extension("key")).expect("key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_malformed_fingerprint_is_refused_and_none_means_normal_verification() {
        assert!(client_config(None).expect("none").is_none());
        assert!(client_config(Some("md5:abc")).is_err());
        assert!(client_config(Some(&format!("sha256:{}", "ab".repeat(32)))).expect("good").is_some());
    }
}
