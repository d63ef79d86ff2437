//! A client of `kubelet-dm` (e2e/kubelet-dm): kubelet's real device manager in a process of its
//! own, driven by one JSON command per line. The tests use it to have a device plugin
//! registered, listed, allocated and restarted by kubelet's code, not by a client written here.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Longest a command other than `wait` may take (a restart stops and starts the manager).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The harness binary: `$ALLOT_E2E_BIN/kubelet-dm`, else the bin directory `e2e/build-deps`
/// prints.
pub fn binary() -> Result<PathBuf> {
    let bin = match std::env::var_os("ALLOT_E2E_BIN").filter(|b| !b.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("build-deps");
            let out = std::process::Command::new(&script)
                .arg("--print-bin")
                .output()
                .with_context(|| format!("running {} --print-bin", script.display()))?;
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
    };
    let path = bin.join("kubelet-dm");
    if !path.is_file() {
        bail!(
            "{} is missing: run e2e/build-deps (it builds the harness with the control plane)",
            path.display()
        );
    }
    Ok(path)
}

/// A running harness; killed when dropped.
#[derive(Debug)]
pub struct KubeletDm {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    log: PathBuf,
}

impl KubeletDm {
    /// Starts kubelet's device manager on `dir` (the device-plugins directory). Its log goes
    /// to `dir/../kubelet-dm.log`.
    pub async fn start(dir: &Path) -> Result<Self> {
        let bin = binary()?;
        let log = dir.with_file_name("kubelet-dm.log");
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = Command::new(&bin)
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdin = child.stdin.take().context("the harness has no stdin")?;
        let stdout = child.stdout.take().context("the harness has no stdout")?;
        let mut dm = KubeletDm {
            child,
            stdin,
            stdout: BufReader::new(stdout).lines(),
            log,
        };
        // One round trip before anyone uses it: the manager is serving its socket, so a
        // plugin that registers next is not racing the harness's start.
        dm.capacity()
            .await
            .with_context(|| format!("the harness's first answer; log:\n{}", dm.log_tail(20)))?;
        Ok(dm)
    }

    /// The last lines of the harness's log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Sends one command and returns its reply (`ok` true or false: the caller decides).
    pub async fn call(&mut self, command: Value, timeout: Duration) -> Result<Value> {
        let op = command["op"].as_str().unwrap_or("?").to_string();
        let mut line = serde_json::to_vec(&command)?;
        line.push(b'\n');
        let exchange = async {
            self.stdin.write_all(&line).await?;
            self.stdin.flush().await?;
            self.stdout.next_line().await
        };
        let reply = match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(Some(reply))) => reply,
            Ok(Ok(None)) | Ok(Err(_)) => {
                let status = self.child.try_wait().ok().flatten();
                bail!(
                    "kubelet-dm {op}: the harness is gone ({status:?}); its log:\n{}",
                    self.log_tail(30)
                );
            }
            Err(_) => bail!(
                "kubelet-dm {op}: no reply in {timeout:?}; its log:\n{}",
                self.log_tail(30)
            ),
        };
        serde_json::from_str(&reply).with_context(|| format!("kubelet-dm {op}: reply {reply:?}"))
    }

    /// Sends a command whose reply must be `ok`.
    async fn must(&mut self, command: Value, timeout: Duration) -> Result<Value> {
        let reply = self.call(command, timeout).await?;
        if reply["ok"] != true {
            bail!("kubelet-dm: {reply}; its log:\n{}", self.log_tail(20));
        }
        Ok(reply)
    }

    /// Waits until kubelet's allocatable count of `resource` is `allocatable`.
    pub async fn wait(
        &mut self,
        resource: &str,
        allocatable: i64,
        timeout: Duration,
    ) -> Result<Value> {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let command = json!({ "op": "wait", "resource": resource, "allocatable": allocatable, "timeout_ms": ms });
        self.must(command, timeout + CALL_TIMEOUT).await
    }

    /// kubelet's capacity and allocatable counts per resource.
    pub async fn capacity(&mut self) -> Result<Value> {
        self.must(json!({ "op": "capacity" }), CALL_TIMEOUT).await
    }

    /// Admits `pod` (as the API server returns it) as kubelet would: Allocate for each
    /// container, then the run options. The reply may be a refusal (`ok` false).
    pub async fn admit(&mut self, pod: &Value) -> Result<Value> {
        self.call(json!({ "op": "admit", "pod": pod }), CALL_TIMEOUT)
            .await
    }

    /// The pod with this UID terminated: its devices are free again.
    pub async fn remove(&mut self, uid: &str) -> Result<()> {
        self.must(json!({ "op": "remove", "uid": uid }), CALL_TIMEOUT)
            .await
            .map(drop)
    }

    /// kubelet restarts: a new device manager on the same directory.
    pub async fn restart(&mut self) -> Result<()> {
        self.must(json!({ "op": "restart" }), CALL_TIMEOUT)
            .await
            .map(drop)
    }
}
