//! The allot processes of the tests: the binary under test (built once per test process),
//! a running allot role with its log under `target/e2e-logs`, and free ports for it.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::{Cluster, POLL, WAIT, repo_root};

/// `cargo build --locked <args>` in the workspace (debug profile); the path of `artifact` in
/// the target directory. Each distinct build runs once per test process.
pub fn cargo_artifact(args: &[&str], artifact: &str) -> Result<PathBuf> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static BUILT: OnceLock<Mutex<HashMap<String, Result<PathBuf, String>>>> = OnceLock::new();
    let key = args.join(" ");
    let mut built = BUILT
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    built
        .entry(key.clone())
        .or_insert_with(|| {
            let root = repo_root();
            let status = allot_e2e::cargo::nested_cargo()
                .args(["build", "--locked"])
                .args(args)
                .current_dir(&root)
                .status()
                .map_err(|e| format!("running cargo build: {e}"))?;
            if !status.success() {
                return Err(format!("cargo build {key} failed ({status})"));
            }
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| root.join("target"), PathBuf::from);
            Ok(target.join("debug").join(artifact))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// The `allot` binary under test: `$ALLOT_BIN` if set, else the workspace's debug build.
pub fn allot_binary() -> Result<PathBuf> {
    match std::env::var_os("ALLOT_BIN").filter(|b| !b.is_empty()) {
        Some(bin) => Ok(PathBuf::from(bin)),
        None => cargo_artifact(&["--bin", "allot"], "allot"),
    }
}

/// A running allot process (extender, controller, agent), killed when dropped. Its stderr
/// goes to `target/e2e-logs/<name>.log`, which `e2e/run` keeps after the run.
pub struct AllotProcess {
    pub name: String,
    pub log: PathBuf,
    child: std::process::Child,
}

impl AllotProcess {
    /// Start `allot <args>` against this control plane's kubeconfig.
    pub fn start(cluster: &Cluster, name: &str, args: &[&str]) -> Result<Self> {
        Self::start_with_env(cluster, name, args, &[])
    }

    pub fn start_with_env(
        cluster: &Cluster,
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let bin = allot_binary()?;
        let dir = repo_root().join("target").join("e2e-logs");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = dir.join(format!("{name}.log"));
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(&bin)
            .args(args)
            .env("KUBECONFIG", &cluster.kubeconfig)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(env.iter().copied())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {} {}", bin.display(), args.join(" ")))?;
        Ok(Self {
            name: name.to_string(),
            log,
            child,
        })
    }

    /// Fail (with the log's tail) if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); last log lines:\n{}",
                self.name,
                self.log_tail(30)
            );
        }
        Ok(())
    }

    /// How the process ended, if it has.
    pub fn exit_status(&mut self) -> Result<Option<std::process::ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Wait until `url` answers 200 (e.g. an admin `/readyz`), failing early if the process dies.
    pub async fn wait_ready(&mut self, url: &str) -> Result<()> {
        let what = format!("{} at {url}", self.name);
        let start = std::time::Instant::now();
        loop {
            self.check_alive()?;
            let ok = Command::new("curl")
                .args(["-sf", "-o", "/dev/null", url])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(());
            }
            if start.elapsed() > WAIT {
                bail!(
                    "timed out after {WAIT:?} waiting for {what}; last log lines:\n{}",
                    self.log_tail(30)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The last `n` lines of the process's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Ask the process to stop (SIGTERM, as kubelet does) and wait at most `wait` for it to
    /// exit; SIGKILL after that, and an error saying so.
    pub async fn terminate(
        &mut self,
        wait: std::time::Duration,
    ) -> Result<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status()?;
        anyhow::ensure!(sent.success(), "kill -TERM {pid} ({}) failed", self.name);
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if start.elapsed() > wait {
                self.stop();
                bail!(
                    "{} did not exit within {wait:?} of SIGTERM; killed",
                    self.name
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stop the process (SIGKILL) and wait for it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AllotProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A free TCP port on 127.0.0.1 (bound then released; good enough for tests run one at a time).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
