//! Loopback load test of the extender's HTTP server: kube-scheduler's filter then prioritize
//! calls for a shared-GPU pod against 500 candidate nodes (`nodeCacheCapable: true` bodies),
//! from 1, 4 and 16 keep-alive connections, a fixed number of rounds each, so it is bounded and
//! stops by itself. Server and clients share this machine's cores, as on a scheduler node.
//!
//! `cargo bench --bench extender_http` prints requests/s and the latency distribution of a
//! filter+prioritize pair per concurrency level.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use allot::extender::server::{Extender, router};
use allot::extender::snapshot_store;
use allot::extender::state::ClusterSnapshot;

mod common;
use common::{args, cluster, percentiles};

/// Filter+prioritize pairs per concurrency level (all connections together).
const ROUNDS: usize = 4_000;
const NODES: usize = 500;

/// A minimal HTTP/1.1 keep-alive client: POST and read one response (Content-Length bodies).
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
        }
    }

    fn post(&mut self, path: &str, body: &[u8]) -> usize {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.writer.write_all(head.as_bytes()).expect("write head");
        self.writer.write_all(body).expect("write body");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        assert!(line.starts_with("HTTP/1.1 200"), "{path}: {line}");
        let mut length = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header");
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().expect("content-length");
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).expect("body");
        body.len()
    }
}

fn main() {
    // `cargo test --benches` runs bench targets with --bench absent: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let cluster = cluster(NODES);
    let body = serde_json::to_vec(&args(&cluster, 500)).expect("body");
    // Feasible, as §4a measured it: every feasible node in each answer.
    let store = snapshot_store(ClusterSnapshot::new(cluster, Vec::new()))
        .with_filter_answer(allot::extender::FilterAnswer::Feasible);
    let ext = Extender::new(Arc::new(store));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    runtime.spawn(async move { axum::serve(listener, router(ext)).await });

    println!(
        "{NODES} nodes, request body {} bytes, {ROUNDS} filter+prioritize pairs per level",
        body.len()
    );
    for connections in [1usize, 4, 16] {
        let per = ROUNDS / connections;
        let start = Instant::now();
        let workers: Vec<_> = (0..connections)
            .map(|_| {
                let body = body.clone();
                std::thread::spawn(move || {
                    let mut conn = Conn::open(addr);
                    let mut samples = Vec::with_capacity(per);
                    for _ in 0..per {
                        let t = Instant::now();
                        conn.post("/filter", &body);
                        conn.post("/prioritize", &body);
                        samples.push(t.elapsed());
                    }
                    samples
                })
            })
            .collect();
        let samples: Vec<Duration> = workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect();
        let took = start.elapsed().as_secs_f64();
        println!(
            "{connections:>2} connections: {:.0} requests/s ({:.0} pairs/s)",
            2.0 * samples.len() as f64 / took,
            samples.len() as f64 / took
        );
        percentiles(
            &format!("{connections:>2} connections, filter+prioritize"),
            samples,
        );
    }
}
