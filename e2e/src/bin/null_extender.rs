//! e2e-null-extender: the least work a scheduler extender can do, so that e2e/bench's `null`
//! mode measures what the extender protocol itself costs kube-scheduler on this machine (its
//! encoding of the pod and the node names, the loopback round trip, its decoding of the answer,
//! and the waits for a CPU on either side), apart from anything allot decides or watches.
//!
//! It serves HTTP/1.1 with keep-alive on one loopback address, as the real extender does
//! (TCP_NODELAY, one runtime worker per core). `POST /filter` answers with the first of the
//! request's `NodeNames` (none when it has none), so kube-scheduler skips scoring as it does
//! with `allot extender --filter-answer auto`; `GET /readyz` answers `ok`; anything else 404.
//! No watches, no binds (kube-scheduler binds itself in this mode). A malformed or oversized
//! request, or a chunked one (kube-scheduler sends a Content-Length), gets a 400 or 413 and its
//! connection is closed.
//!
//!     e2e-null-extender --listen 127.0.0.1:PORT

use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request accepted (head and body): far above the ~100 KiB of a 5,000-name filter.
const MAX_REQUEST: usize = 16 << 20;

/// The part of kube-scheduler's `ExtenderArgs` this server reads; the pod is skipped unread.
#[derive(Deserialize)]
struct FilterArgs {
    #[serde(rename = "NodeNames", default)]
    node_names: Option<Vec<String>>,
}

/// One parsed request: method, path and body.
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

/// Why a request could not be served: its status line and what to say.
struct Refusal(&'static str, String);

#[tokio::main]
async fn main() -> Result<()> {
    let addr = listen_address(std::env::args().skip(1))?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    eprintln!("e2e-null-extender: serving on {addr}");
    loop {
        let (stream, _) = listener.accept().await.context("accepting a connection")?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            if let Err(e) = serve(stream).await {
                eprintln!("e2e-null-extender: connection ended: {e:#}");
            }
        });
    }
}

/// `--listen ADDR` (a loopback address: this server is for the local bench only).
fn listen_address(mut args: impl Iterator<Item = String>) -> Result<SocketAddr> {
    let (Some(flag), Some(value), None) = (args.next(), args.next(), args.next()) else {
        bail!("usage: e2e-null-extender --listen 127.0.0.1:PORT");
    };
    if flag != "--listen" {
        bail!("unknown argument '{flag}' (usage: e2e-null-extender --listen 127.0.0.1:PORT)");
    }
    let addr: SocketAddr = value
        .parse()
        .with_context(|| format!("--listen: '{value}' is not an IP address and port"))?;
    if !addr.ip().is_loopback() {
        bail!("--listen: {addr} is not a loopback address");
    }
    Ok(addr)
}

/// Serve requests on one connection until the client closes it or sends something invalid.
async fn serve(mut stream: TcpStream) -> Result<()> {
    let mut buf = Vec::with_capacity(64 << 10);
    loop {
        let request = match read_request(&mut stream, &mut buf).await {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(Refusal(status, why)) => {
                respond(&mut stream, status, "text/plain", why.as_bytes()).await?;
                return Ok(());
            }
        };
        match (request.method.as_str(), request.path.as_str()) {
            ("POST", "/filter") => match serde_json::from_slice::<FilterArgs>(&request.body) {
                Ok(args) => {
                    let first: Vec<&str> = args
                        .node_names
                        .iter()
                        .flatten()
                        .take(1)
                        .map(String::as_str)
                        .collect();
                    let answer = serde_json::json!({
                        "NodeNames": first, "FailedNodes": {},
                        "FailedAndUnresolvableNodes": {}, "Error": ""
                    });
                    let body = serde_json::to_vec(&answer)?;
                    respond(&mut stream, "200 OK", "application/json", &body).await?;
                }
                Err(e) => {
                    let why = format!("the filter request is not ExtenderArgs JSON: {e}");
                    respond(&mut stream, "400 Bad Request", "text/plain", why.as_bytes()).await?;
                    return Ok(());
                }
            },
            ("GET", "/readyz") => respond(&mut stream, "200 OK", "text/plain", b"ok").await?,
            _ => respond(&mut stream, "404 Not Found", "text/plain", b"not found").await?,
        }
    }
}

/// The next request on the connection; `None` when the client closed it between requests.
/// `buf` keeps bytes read past this request (a pipelined next one).
async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<Option<Request>, Refusal> {
    let io = |e: std::io::Error| Refusal("400 Bad Request", format!("reading the request: {e}"));
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_REQUEST {
            return Err(Refusal(
                "413 Payload Too Large",
                "request head too large".into(),
            ));
        }
        if read_more(stream, buf).await.map_err(io)? == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(Refusal(
                "400 Bad Request",
                "connection closed mid-request".into(),
            ));
        }
    };
    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| Refusal("400 Bad Request", "request head is not UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let mut start = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(path)) = (start.next(), start.next()) else {
        return Err(Refusal("400 Bad Request", "no request line".into()));
    };
    let (method, path) = (method.to_string(), path.to_string());
    let mut length = 0usize;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("transfer-encoding") {
            let why = "chunked bodies are not supported: send Content-Length";
            return Err(Refusal("400 Bad Request", why.into()));
        }
        if name.trim().eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().map_err(|_| {
                Refusal(
                    "400 Bad Request",
                    format!("bad Content-Length '{}'", value.trim()),
                )
            })?;
        }
    }
    if length > MAX_REQUEST {
        return Err(Refusal(
            "413 Payload Too Large",
            format!("body of {length} bytes"),
        ));
    }
    while buf.len() < head_end + length {
        if read_more(stream, buf).await.map_err(io)? == 0 {
            return Err(Refusal(
                "400 Bad Request",
                "connection closed mid-body".into(),
            ));
        }
    }
    let body = buf[head_end..head_end + length].to_vec();
    buf.drain(..head_end + length);
    Ok(Some(Request { method, path, body }))
}

/// Append what the socket has to `buf`; 0 at end of stream.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    buf.reserve(64 << 10);
    stream.read_buf(buf).await
}

/// One response, head and body in a single write.
async fn respond(stream: &mut TcpStream, status: &str, kind: &str, body: &[u8]) -> Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out).await.context("writing the response")
}
