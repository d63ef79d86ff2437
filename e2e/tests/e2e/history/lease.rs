//! One recorder among several extender replicas (issue 20 item 1): two `allot extender`
//! processes watch the real control plane, each with a history directory of its own, and
//! compete for the `allot-history` Lease (in the test's namespace). They are not in
//! kube-scheduler's path: the recorder records what its own /filter and /bind calls decide,
//! and from its pod watch the departures and the binds other replicas made, so the test is
//! their kube-scheduler. It gives both replicas every pod's /filter (a pod fitting nowhere
//! included) and binds through the Lease holder, then one pod through the other replica;
//! only the holder (`allot_history_recording 1`) writes rows, that pod's included. The holder
//! gives the Lease up on SIGTERM, so the other takes it at its next round, well before the
//! Lease would expire, and records the next pods; no pod has a row in both directories. A pod
//! another replica found no node for is recorded by no one, and a pod the holder saw bound
//! but not leave stays in its last `open.csv` (checked here for a pending pod).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

use crate::extender::probe::post_json;
use crate::support::{
    AllotProcess, Cluster, GPU, WAIT, curl_ok, free_port, pod, poll, repo_root, wait_running,
};

/// No scheduler serves it: the pods wait for the test's own /filter and /bind.
const SCHEDULER: &str = "allot-e2e-history-lease";
/// The extender's Lease timing (controller::lease DEFAULT_DURATION and DEFAULT_RENEW_EVERY):
/// a stopped holder's Lease expires at most DURATION after its last renewal, which came at
/// most RENEW before the stop; the other replica looks again every RENEW.
const DURATION: Duration = Duration::from_secs(15);
const RENEW: Duration = Duration::from_secs(5);
/// The recorder writes rows every 5 s; generous.
const ROWS: Duration = Duration::from_secs(20);

/// One extender replica: its process, verbs and admin addresses, and history directory.
struct Replica {
    process: AllotProcess,
    listen: String,
    admin: String,
    dir: PathBuf,
}

impl Replica {
    fn start(cluster: &Cluster, ns: &str, name: &str, base: &Path) -> Result<Self> {
        let dir = base.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let listen = format!("127.0.0.1:{}", free_port()?);
        let admin = format!("127.0.0.1:{}", free_port()?);
        let shown = dir.display().to_string();
        let args = [
            "extender",
            "--listen",
            &listen,
            "--admin-listen",
            &admin,
            "--history-dir",
            &shown,
            "--history-plain-names",
            "--lease-namespace",
            ns,
            "--drain-seconds",
            "1",
        ];
        let process = AllotProcess::start(cluster, name, &args)?;
        Ok(Self {
            process,
            listen,
            admin,
            dir,
        })
    }

    /// `allot_history_recording` on its admin /metrics.
    fn recording(&mut self) -> Result<i64> {
        self.process.check_alive()?;
        let text = curl_ok(&[format!("http://{}/metrics", self.admin)])?;
        text.lines()
            .find_map(|l| l.strip_prefix("allot_history_recording "))
            .context("no allot_history_recording in /metrics")?
            .trim()
            .parse()
            .context("allot_history_recording")
    }

    fn filter(&self, pod: &Value, nodes: &[String]) -> Result<Value> {
        let answer = post_json(
            &format!("http://{}/filter", self.listen),
            &json!({ "Pod": pod, "NodeNames": nodes }),
        )?;
        ensure!(
            answer["Error"].as_str().is_none_or(str::is_empty),
            "{}: {answer}",
            self.process.name
        );
        Ok(answer)
    }

    /// The rows of its pod files and of `open.csv` (pods still in flight when it stopped),
    /// keyed by the pod's `namespace/name`; the files are there only once it has led.
    fn rows(&self, ns: &str) -> Result<Vec<(String, String)>> {
        let mut rows = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let name = name.unwrap_or_default();
            let pods = name.starts_with("pods-") && name.ends_with(".csv");
            if pods || name == "open.csv" {
                let text = std::fs::read_to_string(&path)?;
                for line in text.lines().filter(|l| l.starts_with(&format!("{ns}/"))) {
                    let key = line.split(',').next().unwrap_or_default().to_string();
                    rows.push((key, name.clone()));
                }
            }
        }
        Ok(rows)
    }
}

/// Which of the two holds the Lease, once exactly one says it records.
async fn leader(replicas: &mut [Replica; 2], limit: Duration) -> Result<usize> {
    poll("exactly one replica recording", limit, || {
        let states = replicas
            .iter_mut()
            .map(Replica::recording)
            .collect::<Result<Vec<_>>>();
        async move {
            Ok(match states?.as_slice() {
                [1, 0] => Some(0),
                [0, 1] => Some(1),
                [1, 1] => bail!("both replicas record"),
                _ => None,
            })
        }
    })
    .await
}

/// Create `name` for no scheduler, have `others` (the replicas still running) and `binder`
/// filter it and `binder` bind it where its filter answered; wait until it runs.
async fn place(
    pods: &Api<Pod>,
    name: &str,
    binder: &Replica,
    others: &[&Replica],
    nodes: &[String],
) -> Result<()> {
    pods.create(&PostParams::default(), &pod(name, SCHEDULER, Some(1))?)
        .await?;
    let p = serde_json::to_value(pods.get(name).await?)?;
    for r in others {
        r.filter(&p, nodes)?;
    }
    let answer = binder.filter(&p, nodes)?;
    let node = answer["NodeNames"][0]
        .as_str()
        .with_context(|| format!("no node for {name}: {answer}"))?;
    let bind = json!({
        "PodName": name, "PodNamespace": p["metadata"]["namespace"],
        "PodUID": p["metadata"]["uid"], "Node": node
    });
    let url = format!("http://{}/bind", binder.listen);
    let done = post_json(&url, &bind)?;
    ensure!(
        done["Error"].as_str().is_none_or(str::is_empty),
        "bind {name}: {done}"
    );
    wait_running(pods, name).await.map(drop)
}

/// Wait until `replica`'s pod files hold rows for every pod of `want`.
async fn recorded(replica: &Replica, ns: &str, want: &[&str]) -> Result<()> {
    let what = format!("{} to record {want:?}", replica.process.name);
    poll(&what, ROWS, || async {
        let rows = replica.rows(ns)?;
        let has = |p: &&str| {
            rows.iter()
                .any(|(k, f)| *k == format!("{ns}/{p}") && f.starts_with("pods-"))
        };
        Ok(want.iter().all(has).then_some(()))
    })
    .await
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn one_replica_records_while_it_holds_the_lease_and_the_other_takes_over() -> Result<()> {
    let test = "one_replica_records_while_it_holds_the_lease_and_the_other_takes_over";
    let cluster = Cluster::from_env(test).await?;
    let gpus: Vec<(String, u32)> = Api::<Node>::all(cluster.client.clone())
        .list(&ListParams::default().labels("allot.dev/gpu-model"))
        .await?
        .items
        .into_iter()
        .filter_map(|n| {
            let count = n.status?.capacity?.get(GPU)?.0.parse().ok()?;
            Some((n.metadata.name?, count))
        })
        .collect();
    let nodes: Vec<String> = gpus.iter().map(|(n, _)| n.clone()).collect();
    // The pod fitting nowhere asks for a GPU more than the largest node has (within what
    // one node could hold: more would be an error, not a pod waiting).
    let most = gpus.iter().map(|(_, g)| *g).max().context("no GPU node")?;
    let started = Instant::now();
    cluster
        .in_namespace("history-lease", |cluster, ns| async move {
            let base = repo_root().join("target/e2e-logs/history-lease");
            let mut replicas = [
                Replica::start(cluster, &ns, "extender-history-a", &base)?,
                Replica::start(cluster, &ns, "extender-history-b", &base)?,
            ];
            for r in &mut replicas {
                let url = format!("http://{}/readyz", r.admin);
                r.process.wait_ready(&url).await?;
            }
            let first = leader(&mut replicas, DURATION + RENEW).await?;
            let second = 1 - first;
            let pods = Api::<Pod>::namespaced(cluster.client.clone(), &ns);
            // A pod that fits nowhere: both replicas filter it; only the holder keeps it open.
            let big = serde_json::to_value(pod("big", SCHEDULER, Some(most + 1))?)?;
            pods.create(&PostParams::default(), &serde_json::from_value(big)?)
                .await?;
            let big = serde_json::to_value(pods.get("big").await?)?;
            for r in &replicas {
                let answer = r.filter(&big, &nodes)?;
                ensure!(
                    answer["NodeNames"].as_array().is_none_or(Vec::is_empty),
                    "{answer}"
                );
            }
            for name in ["a0", "a1"] {
                place(&pods, name, &replicas[first], &[&replicas[second]], &nodes).await?;
                pods.delete(name, &DeleteParams::default()).await?;
            }
            // Bound through the replica without the Lease: the holder takes it in from its
            // pod watch.
            place(&pods, "c0", &replicas[second], &[&replicas[first]], &nodes).await?;
            // It looks at the watch four times a second: a pod bound and gone before then is
            // missed (these pods live for milliseconds otherwise).
            tokio::time::sleep(Duration::from_secs(2)).await;
            pods.delete("c0", &DeleteParams::default()).await?;
            recorded(&replicas[first], &ns, &["a0", "a1", "c0"]).await?;
            let quiet = replicas[second].rows(&ns)?.is_empty();
            let still = leader(&mut replicas, WAIT).await?;
            ensure!(
                quiet && still == first,
                "the replica without the Lease recorded, or took it"
            );

            let stopping = Instant::now();
            let status = replicas[first].process.terminate(WAIT).await?;
            ensure!(
                status.success(),
                "{} exited {status} on SIGTERM",
                replicas[first].process.name
            );
            let took = poll(
                "the other replica to take the Lease",
                DURATION + RENEW * 2,
                || {
                    let r = &mut replicas[second];
                    let state = r.recording();
                    async move { Ok((state? == 1).then_some(())) }
                },
            )
            .await
            .map(|()| stopping.elapsed())?;
            // Given up on SIGTERM: taken at the other's next round, not at expiry.
            ensure!(
                took < DURATION - Duration::from_secs(3),
                "taken {took:?} after SIGTERM: the Lease was not given up (it expires after \
                 {DURATION:?})"
            );
            for name in ["b0", "b1"] {
                place(&pods, name, &replicas[second], &[], &nodes).await?;
                pods.delete(name, &DeleteParams::default()).await?;
            }
            recorded(&replicas[second], &ns, &["b0", "b1"]).await?;
            let status = replicas[second].process.terminate(WAIT).await?;
            ensure!(
                status.success(),
                "{} exited {status}",
                replicas[second].process.name
            );

            let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for r in &replicas {
                for (key, file) in r.rows(&ns)? {
                    seen.entry(key)
                        .or_default()
                        .push(format!("{}:{file}", r.process.name));
                }
            }
            let twice: Vec<_> = seen.iter().filter(|(_, at)| at.len() > 1).collect();
            ensure!(twice.is_empty(), "recorded more than once: {twice:?}");
            let at = |p: &str| seen.get(&format!("{ns}/{p}")).cloned().unwrap_or_default();
            let (a, b) = (
                &replicas[first].process.name,
                &replicas[second].process.name,
            );
            for p in ["a0", "a1", "c0"] {
                ensure!(
                    at(p).len() == 1 && at(p)[0].starts_with(a.as_str()),
                    "{p}: {:?}",
                    at(p)
                );
            }
            for p in ["b0", "b1"] {
                ensure!(
                    at(p).len() == 1 && at(p)[0].starts_with(b.as_str()),
                    "{p}: {:?}",
                    at(p)
                );
            }
            // The pod fitting nowhere, filtered by both while the first held the Lease: open in
            // the first's book alone, so in its open.csv, written when it stopped.
            ensure!(
                at("big") == [format!("{a}:open.csv")],
                "big: {:?}",
                at("big")
            );
            let all = started.elapsed();
            println!(
                "{a} recorded a0, a1 and c0 (bound through {b}); {b} took the Lease {took:?} \
                 after SIGTERM: b0, b1 ({all:?})"
            );
            Ok(())
        })
        .await
}
