//! HTTP from the tests through curl (it speaks TLS with client certificates and reports how a
//! connection failed, which the tests check), one way for every test.

use std::ffi::OsStr;
use std::process::Command;

use anyhow::{Context, Result, ensure};

/// What one curl call got.
#[derive(Debug)]
pub struct Reply {
    /// curl's exit code: 0 when a response came, else why not (7: refused, 35: TLS handshake,
    /// 56: the peer reset the connection, 28: timed out, ...).
    pub exit: i32,
    /// The HTTP status, 0 without a response.
    pub status: u16,
    pub body: String,
}

/// `curl -s -m 10 <args>`: `args` are curl's options and the URL, in curl's order.
pub fn curl<S: AsRef<OsStr>>(args: &[S]) -> Result<Reply> {
    let out = Command::new("curl")
        .args(["-s", "-m", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .context("running curl")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    Ok(Reply {
        exit: out.status.code().unwrap_or(-1),
        status: status.trim().parse().unwrap_or(0),
        body: body.to_string(),
    })
}

/// The body of a 2xx answer to `curl <args>`; anything else is an error naming the call.
pub fn curl_ok<S: AsRef<OsStr>>(args: &[S]) -> Result<String> {
    let reply = curl(args)?;
    ensure!(
        reply.exit == 0 && (200..300).contains(&reply.status),
        "curl {} got status {} (curl exit {})",
        args.iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" "),
        reply.status,
        reply.exit
    );
    Ok(reply.body)
}
