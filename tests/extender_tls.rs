//! The verbs port over TLS on 127.0.0.1, with certificates made in memory: with a client CA
//! only clients it signed get an answer (no certificate, another CA's, or plain HTTP get
//! none); renewed files are used by the next connection, broken ones are refused and the last
//! good ones kept; bad files stop the start with the flag and the path named.
#![cfg(feature = "k8s")]
// Test helpers panic on purpose: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use allot::extender::listen::{Limits, serve_router};
use allot::extender::load_store;
use allot::extender::server::{BODY_LIMIT, Extender, router};
use allot::extender::tls::{Tls, TlsFiles};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ca(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    /// A leaf for `names`, for a server or a client: (certificate PEM, key PEM).
    fn leaf(&self, cn: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.0).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The verbs router over `tls` on a free port.
async fn serve(tls: Arc<Tls>) -> SocketAddr {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/extender");
    let store = load_store(&fixtures.join("cluster.json"), 42).unwrap();
    let ext = Extender::new(Arc::new(store));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = Limits {
        header_read_timeout: Duration::from_secs(2),
        body_read_timeout: Duration::from_secs(2),
        body_limit: BODY_LIMIT,
        max_connections: 8,
        admin_max_connections: 8,
        drain: Duration::from_secs(1),
    };
    tokio::spawn(async move {
        serve_router(
            (listener, Some(tls)),
            router(ext),
            &limits,
            8,
            std::future::pending(),
        )
        .await
    });
    addr
}

/// A TLS client's settings: trusting `ca`, presenting `client` (certificate and key PEM) if
/// given.
fn client_config(ca: &Ca, client: Option<&(String, String)>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.0.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    }
}

/// A CA, a server certificate for `names` and the CA's client, the server's files written to
/// `dir` with the CA as the client CA: (CA, client certificate and key, files).
fn mutual(dir: &Path, names: &[&str]) -> (Ca, (String, String), TlsFiles) {
    let ca = Ca::new("allot test CA");
    let server = ca.leaf("allot-extender", names, ExtendedKeyUsagePurpose::ServerAuth);
    let client = ca.leaf("kube-scheduler", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let files = TlsFiles {
        cert: write(dir, "tls.crt", &server.0),
        key: write(dir, "tls.key", &server.1),
        client_ca: Some(write(dir, "ca.crt", &ca.0.pem())),
    };
    (ca, client, files)
}

/// What a TLS client trusting `ca` (and presenting `client`, if any) gets for a `/filter`
/// with an empty body: the HTTP status line and the server's certificate, or `None`.
async fn ask(
    addr: SocketAddr,
    ca: &Ca,
    client: Option<&(String, String)>,
) -> Option<(String, CertificateDer<'static>)> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(ca, client)));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.ok()?;
    let peer = tls
        .get_ref()
        .1
        .peer_certificates()?
        .first()?
        .clone()
        .into_owned();
    let request =
        "POST /filter HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    tls.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer)).await;
    let _ = read.ok()?;
    let text = String::from_utf8_lossy(&answer);
    let status = text.lines().next().filter(|l| l.starts_with("HTTP/1.1"))?;
    Some((status.to_string(), peer))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_clients_the_ca_signed_get_an_answer_and_renewed_files_take_over() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, client, files) = mutual(dir.path(), &["localhost", "127.0.0.1"]);
    let tls = Tls::load(files.clone()).unwrap();
    assert!(tls.mutual());
    let addr = serve(tls.clone()).await;

    // The CA's client: an HTTP answer (400: an empty body is not ExtenderArgs).
    let (status, first_peer) = ask(addr, &ca, Some(&client))
        .await
        .expect("no answer to a signed client");
    assert!(status.starts_with("HTTP/1.1 400"), "{status}");
    // No certificate, or one from another CA: no answer at all.
    assert!(
        ask(addr, &ca, None).await.is_none(),
        "answered a client without a certificate"
    );
    let rogue = Ca::new("someone else").leaf("intruder", &[], ExtendedKeyUsagePurpose::ClientAuth);
    assert!(
        ask(addr, &ca, Some(&rogue)).await.is_none(),
        "answered another CA's client"
    );
    // Plain HTTP on the TLS port: no HTTP answer.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"POST /filter HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut buf)).await;
    assert!(
        !String::from_utf8_lossy(&buf).starts_with("HTTP/1.1"),
        "plain HTTP was answered"
    );

    // Renewal: the next connection gets the new certificate.
    std::thread::sleep(Duration::from_millis(20));
    let renewed = ca.leaf(
        "allot-extender-2",
        &["127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    std::fs::write(&files.cert, &renewed.0).unwrap();
    std::fs::write(&files.key, &renewed.1).unwrap();
    assert!(tls.reload_if_changed().unwrap(), "the change was not seen");
    assert!(
        !tls.reload_if_changed().unwrap(),
        "reloaded twice for one change"
    );
    let (_, peer) = ask(addr, &ca, Some(&client))
        .await
        .expect("no answer after the renewal");
    assert_ne!(peer, first_peer, "the renewed certificate is not in use");
    assert_eq!(
        peer,
        CertificateDer::from_pem_slice(renewed.0.as_bytes()).unwrap()
    );

    // A broken renewal is refused, and the last good certificate keeps serving.
    std::fs::write(&files.key, "not a key").unwrap();
    let err = tls.reload_if_changed().unwrap_err().to_string();
    assert!(err.contains("--tls-private-key-file"), "{err}");
    let (_, peer) = ask(addr, &ca, Some(&client))
        .await
        .expect("no answer after a broken renewal");
    assert_eq!(
        peer,
        CertificateDer::from_pem_slice(renewed.0.as_bytes()).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_offering_http2_gets_it_and_sends_concurrent_requests_on_one_connection() {
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let dir = tempfile::tempdir().unwrap();
    let (ca, client, files) = mutual(dir.path(), &["127.0.0.1"]);
    let addr = serve(Tls::load(files).unwrap()).await;

    let mut config = client_config(&ca, Some(&client));
    // What Go's HTTP client offers when HTTP/2 is on.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let stream = connector.connect(name, tcp).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));

    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("an HTTP/2 connection");
    tokio::spawn(conn);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/extender");
    let case: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("filter_node_names.json")).unwrap(),
    )
    .unwrap();
    let filter = case["request"].to_string();
    // Eight filters at once on the one connection, and a body over the limit beside them.
    let mut asked = tokio::task::JoinSet::new();
    for i in 0..9 {
        let mut sender = sender.clone();
        let body = if i < 8 {
            filter.clone()
        } else {
            "x".repeat(BODY_LIMIT + 1)
        };
        asked.spawn(async move {
            let request = hyper::Request::post("https://127.0.0.1/filter")
                .header("content-type", "application/json")
                .body(Full::new(hyper::body::Bytes::from(body)))
                .unwrap();
            let answer = sender.send_request(request).await.unwrap();
            let (parts, body) = answer.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            (i, parts.status.as_u16(), parts.version, body)
        });
    }
    let mut answered = 0;
    while let Some(done) = asked.join_next().await {
        let (i, status, version, body) = done.unwrap();
        assert_eq!(version, hyper::Version::HTTP_2);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if i < 8 {
            assert_eq!(status, 200, "{json}");
            assert_eq!(json["Error"], "", "{json}");
            assert!(
                json["NodeNames"].as_array().is_some_and(|n| !n.is_empty()),
                "{json}"
            );
        } else {
            assert_eq!(status, 413, "{json}");
            assert!(
                json["Error"].as_str().unwrap().contains("over the limit"),
                "{json}"
            );
        }
        answered += 1;
    }
    assert_eq!(answered, 9);
}

#[test]
fn bad_files_are_named_with_their_flag() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("allot test CA");
    let server = ca.leaf("s", &["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    let other = ca.leaf("o", &["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    let cert = write(dir.path(), "tls.crt", &server.0);
    let key = write(dir.path(), "tls.key", &server.1);
    let other_key = write(dir.path(), "other.key", &other.1);
    let garbage = write(dir.path(), "garbage", "hello\n");
    let missing = dir.path().join("missing.crt");
    let files = |cert: &Path, key: &Path, ca: Option<&Path>| TlsFiles {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        client_ca: ca.map(Path::to_path_buf),
    };
    let rows: [(TlsFiles, &str); 5] = [
        (files(&missing, &key, None), "--tls-cert-file"),
        (files(&garbage, &key, None), "no PEM certificate"),
        (files(&cert, &garbage, None), "--tls-private-key-file"),
        (files(&cert, &other_key, None), "do not make a usable pair"),
        (files(&cert, &key, Some(&garbage)), "--tls-client-ca-file"),
    ];
    for (f, want) in rows {
        let err = format!("{:#}", Tls::load(f.clone()).unwrap_err());
        assert!(err.contains(want), "{f:?}: {err}");
    }
    assert!(Tls::load(files(&cert, &key, None)).is_ok());
}
