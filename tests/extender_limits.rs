//! The extender's listeners over real sockets on 127.0.0.1, with short limits: half-sent
//! requests are dropped within the read timeouts, the verbs port's connection cap makes
//! further connections wait without touching the admin port, and shutdown is bounded by the
//! drain even while a half-sent request is open (issue 16, defect 3).
#![cfg(feature = "k8s")]
// Test helpers panic on purpose: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use allot::extender::listen::{Limits, serve_router, serve_until};
use allot::extender::load_store;
use allot::extender::server::{BODY_LIMIT, Extender, admin_router, router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Short limits so the tests finish in seconds.
fn limits(max_connections: usize) -> Limits {
    Limits {
        header_read_timeout: Duration::from_secs(1),
        body_read_timeout: Duration::from_secs(1),
        body_limit: BODY_LIMIT,
        max_connections,
        admin_max_connections: 8,
        drain: Duration::from_secs(1),
    }
}

struct Running {
    verbs: SocketAddr,
    admin: SocketAddr,
    stop: watch::Sender<bool>,
    servers: Vec<JoinHandle<std::io::Result<()>>>,
}

async fn start(limits: Limits) -> Running {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/extender");
    let seed = allot::extender::state::DEFAULT_SEED;
    let ext = Extender::new(Arc::new(
        load_store(&fixtures.join("cluster.json"), seed).unwrap(),
    ));
    let (stop, rx) = watch::channel(false);
    let mut servers = Vec::new();
    let mut addrs = Vec::new();
    let apps = [
        (router(ext.clone()), limits.max_connections),
        (admin_router(ext), limits.admin_max_connections),
    ];
    for (app, cap) in apps {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(listener.local_addr().unwrap());
        let (limits, mut rx) = (limits.clone(), rx.clone());
        let stopped = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        servers.push(tokio::spawn(async move {
            serve_router((listener, None), app, &limits, cap, stopped).await
        }));
    }
    Running {
        verbs: addrs[0],
        admin: addrs[1],
        stop,
        servers,
    }
}

fn filter_body() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/extender/filter_node_names.json");
    let case: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    case["request"].to_string()
}

/// One request on its own connection (`Connection: close`); the status line's code.
async fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> u16 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: allot\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A connection that sends part of a request and then nothing: half the head, or the whole
/// head and ten bytes of a 1,000-byte body.
async fn half_sent(addr: SocketAddr, head_only: bool) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let part = if head_only {
        "POST /filter HTTP/1.1\r\nHost: allot\r\nContent-Type: appl".to_string()
    } else {
        "POST /filter HTTP/1.1\r\nHost: allot\r\nContent-Length: 1000\r\n\r\n{\"Pod\": {}".into()
    };
    s.write_all(part.as_bytes()).await.unwrap();
    s
}

/// Whether the server closes `s` within `within` (EOF or reset; any answer before is fine).
async fn closed_within(mut s: TcpStream, within: Duration) -> bool {
    let mut sink = Vec::new();
    timeout(within, s.read_to_end(&mut sink)).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_are_dropped_and_the_verbs_still_answer() {
    let run = start(limits(64)).await;
    let mut held = Vec::new();
    for i in 0..100 {
        held.push(half_sent(run.verbs, i % 2 == 0).await);
    }
    // The admin port has its own budget: answered at once while the verbs port is full.
    let t = Instant::now();
    let health = timeout(
        Duration::from_secs(2),
        request(run.admin, "GET", "/healthz", ""),
    );
    assert_eq!(
        health
            .await
            .expect("/healthz answers while /filter is flooded"),
        200
    );
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    // Two waves of 64 and 36, each dropped after the 1 s timeout.
    let within = Duration::from_secs(6);
    let body = filter_body();
    let closing: Vec<_> = held
        .into_iter()
        .map(|s| tokio::spawn(closed_within(s, within)))
        .collect();
    let filter = timeout(within, request(run.verbs, "POST", "/filter", &body));
    assert_eq!(filter.await.expect("/filter answers within 6 s"), 200);
    let mut open = 0;
    for c in closing {
        open += usize::from(!c.await.unwrap());
    }
    assert_eq!(open, 0, "half-sent connections still open after 6 s");
    let health = timeout(
        Duration::from_secs(2),
        request(run.admin, "GET", "/healthz", ""),
    );
    assert_eq!(health.await.unwrap(), 200);
    let _ = run.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let run = start(limits(8)).await;
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(half_sent(run.verbs, true).await);
    }
    let body = filter_body();
    let t = Instant::now();
    let filter = timeout(
        Duration::from_secs(5),
        request(run.verbs, "POST", "/filter", &body),
    );
    assert_eq!(
        filter.await.expect("/filter answers once a slot frees"),
        200
    );
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(500),
        "the 9th connection was served at once ({waited:?}): no connection cap"
    );
    drop(held);
    let _ = run.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_bounded_by_the_drain_while_a_request_is_half_sent() {
    // Read timeouts far beyond the test: only the drain can end these connections.
    let mut l = limits(16);
    l.header_read_timeout = Duration::from_secs(60);
    l.body_read_timeout = Duration::from_secs(60);
    let run = start(l).await;
    let verbs_head = half_sent(run.verbs, true).await;
    let verbs_body = half_sent(run.verbs, false).await;
    let admin = half_sent(run.admin, true).await;
    // Let the servers accept them before the signal.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    let _ = run.stop.send(true);
    for server in run.servers {
        let done = timeout(Duration::from_secs(4), server).await;
        let served = done.expect("a server still running 4 s after the signal (drain is 1 s)");
        served.unwrap().unwrap();
    }
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    for s in [verbs_head, verbs_body, admin] {
        assert!(closed_within(s, Duration::from_secs(2)).await);
    }
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_before_they_are_read() {
    let run = start(limits(16)).await;
    let mut s = TcpStream::connect(run.verbs).await.unwrap();
    let head = format!(
        "POST /filter HTTP/1.1\r\nHost: allot\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n",
        BODY_LIMIT + 1
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = timeout(Duration::from_secs(3), s.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "no answer to an oversized Content-Length");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    let _ = run.stop.send(true);
}

/// Two ports free a moment ago (bound to port 0, then let go).
fn free_ports() -> (SocketAddr, SocketAddr) {
    let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    (a.local_addr().unwrap(), b.local_addr().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_extenders_serve_answers_and_stops_within_the_drain() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/extender");
    let seed = allot::extender::state::DEFAULT_SEED;
    let ext = Extender::new(Arc::new(
        load_store(&fixtures.join("cluster.json"), seed).unwrap(),
    ));
    let (verbs, admin) = free_ports();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut l = limits(16);
    l.header_read_timeout = Duration::from_secs(60);
    let server = tokio::spawn(async move {
        let stopped = async move {
            let _ = stopped.await;
        };
        serve_until(ext, (verbs, None), admin, None, &l, stopped).await
    });
    let mut up = false;
    for _ in 0..50 {
        if TcpStream::connect(admin).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the admin port never opened");
    assert_eq!(request(admin, "GET", "/healthz", "").await, 200);
    assert_eq!(request(verbs, "POST", "/filter", &filter_body()).await, 200);
    let held = half_sent(verbs, true).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = stop.send(());
    let done = timeout(Duration::from_secs(4), server).await;
    done.expect("still serving 4 s after the signal (drain is 1 s)")
        .unwrap()
        .unwrap();
    assert!(closed_within(held, Duration::from_secs(2)).await);
}
