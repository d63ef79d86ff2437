//! The chart's RBAC against what allot's components really do. The chart's ServiceAccounts,
//! roles and bindings are applied in the namespace `allot-audit`, whose service accounts the
//! API server's audit log records (`e2e/up`); the extender, the controller and the agent run
//! there under those accounts' tokens through a scenario each (a pod scheduled and bound, a
//! ScheduleRequest created, scaled down and deleted, a node's telemetry published, and the
//! device plugin admitting and refusing pods for kubelet's device manager); then the
//! audit log's (verb, resource) pairs per account are compared with what the chart grants.
//! Fails when a call was refused (the chart grants less) or when a grant was never used
//! and is not in [`UNEXERCISED`] with its reason (the chart grants more).

use std::path::Path;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::chart::values::helm;
use crate::controller::{bound_pods, create, requests, task};
use crate::own::{run_dir, scheduler};
use crate::support::{
    AllotProcess, Cluster, WAIT, cargo_artifact, fake_gpus, free_port, pod, poll, skip,
    wait_running, write_devices,
};

mod audit;
mod plugin;
use audit::{grants, used};

/// The namespace whose service accounts the audit policy of `e2e/up` records.
pub(crate) const NS: &str = "allot-audit";

/// (account, group, resource, verb) the chart grants that the scenarios cannot reach, and why.
const UNEXERCISED: &[(&str, &str, &str, &str, &str)] = &[
    (
        "allot-agent",
        "allot.dev",
        "nodetelemetries",
        "create",
        "server-side apply of a new object is also authorized as create; the audit log records only the request's verb, patch",
    ),
    (
        "allot-controller",
        "events.k8s.io",
        "events",
        "patch",
        "a repeated event is patched (its series count grows); a scenario this short may not repeat one",
    ),
    (
        "allot-controller",
        "",
        "pods",
        "patch",
        "only when an elastic replica is given back to a higher-priority request (marked, then deleted; e2e controller::give_back, under the admin account); the audited request gives nothing back",
    ),
    (
        "allot-controller",
        "allot.dev",
        "schedulerequests/finalizers",
        "update",
        "ownerReferences with blockOwnerDeletion on created pods need it where the OwnerReferencesPermissionEnforcement admission plugin runs (not in e2e/up); never a request of its own",
    ),
];

/// A kubeconfig for `sa` of [`NS`] (a token from the TokenRequest API), written to `dir`,
/// and the token.
fn kubeconfig_and_token(
    cluster: &Cluster,
    dir: &Path,
    sa: &str,
) -> Result<(std::path::PathBuf, String)> {
    let token = cluster.kubectl(&["create", "token", sa, "-n", NS, "--duration", "1h"])?;
    let server = std::env::var("ALLOT_E2E_API_URL").context("ALLOT_E2E_API_URL not set")?;
    let ca = run_dir()?.join("pki/ca.crt");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: {server}\n    certificate-authority: {}\n\
         users:\n- name: {sa}\n  user:\n    token: {}\ncontexts:\n- name: {sa}\n  context:\n    cluster: e2e\n    user: {sa}\n    namespace: {NS}\ncurrent-context: {sa}\n",
        ca.display(),
        token.trim()
    );
    let path = dir.join(format!("{sa}.kubeconfig"));
    std::fs::write(&path, text)?;
    Ok((path, token.trim().to_string()))
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn the_charts_rbac_grants_what_the_components_use_and_no_more() -> Result<()> {
    let test = "the_charts_rbac_grants_what_the_components_use_and_no_more";
    let cluster = Cluster::from_env(test).await?;
    let Some((helm, version)) = helm(test)? else {
        return Ok(());
    };
    let audit_log = run_dir()?.join("logs/audit.log");
    if !audit_log.exists() {
        skip(
            test,
            "the API server keeps no audit log (an e2e/up from before the audit policy)",
        );
        return Ok(());
    }
    let sched = "allot-audit";
    let (port, admin) = (free_port()?, free_port()?);
    let sets = vec![
        "extender.tls.enabled=false".to_string(),
        format!("scheduler.extender.urlPrefix=http://127.0.0.1:{port}"),
    ];
    // With the device plugin on, so that its rules are granted and checked too.
    let plugin_on = ["agent.devicePlugin.enabled=true"];
    let objs = crate::chart::objects(&crate::chart::render(&helm, &version, NS, &plugin_on)?)?;
    let rbac: Vec<&Value> = objs
        .iter()
        .filter(|o| {
            let kind = o["kind"].as_str().unwrap_or("");
            let name = o["metadata"]["name"].as_str().unwrap_or("");
            matches!(
                kind,
                "ServiceAccount" | "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding"
            ) && ["allot-extender", "allot-controller", "allot-agent"]
                .iter()
                .any(|c| name.starts_with(c))
        })
        .collect();
    let granted = grants(&objs);
    let dir = crate::support::repo_root()
        .join("target/e2e-logs")
        .join(format!("rbac-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let manifest = dir.join("rbac.yaml");
    let list = json!({ "apiVersion": "v1", "kind": "List", "items": rbac });
    std::fs::write(&manifest, serde_json::to_string(&list)?)?;
    if let Err(e) = cluster.kubectl(&["create", "namespace", NS])
        && !e.to_string().contains("AlreadyExists")
    {
        return Err(e);
    }
    let outcome = async {
        cluster.kubectl(&["apply", "-f", &manifest.to_string_lossy()])?;
        // The API server's RBAC cache takes a moment to see new bindings: wait until every
        // binding applies, so that a refusal in the log means a missing rule, not a race.
        for (sa, verb, resource) in [
            ("allot-extender", "create", "pods --subresource=binding"),
            ("allot-controller", "create", "pods"),
            ("allot-controller", "create", "leases.coordination.k8s.io"),
            ("allot-controller", "create", "events.events.k8s.io"),
            ("allot-agent", "patch", "nodetelemetries.allot.dev"),
            ("allot-agent", "list", "pods"),
        ] {
            let who = format!("system:serviceaccount:{NS}:{sa}");
            poll(
                &format!("{sa} allowed to {verb} {resource}"),
                WAIT,
                || async {
                    let mut args = vec!["auth", "can-i", verb];
                    args.extend(resource.split(' '));
                    args.extend(["-n", NS, "--as", who.as_str()]);
                    let answer = cluster.kubectl(&args);
                    Ok(answer.is_ok_and(|a| a.trim() == "yes").then_some(()))
                },
            )
            .await?;
        }
        scenarios(&cluster, &helm, &version, (sched, port, admin, &sets), &dir).await
    }
    .await;
    let _ = cluster.kubectl(&["delete", "-f", &manifest.to_string_lossy(), "--wait=false"]);
    let _ = cluster.kubectl(&["delete", "namespace", NS, "--wait=false"]);
    outcome?;

    let log = std::fs::read_to_string(&audit_log).context("reading the audit log")?;
    let used = used(&log)?;
    let mut problems = Vec::new();
    for sa in ["allot-extender", "allot-controller", "allot-agent"] {
        let did = used.get(sa).cloned().unwrap_or_default();
        let may = granted.get(sa).cloned().unwrap_or_default();
        ensure!(!did.is_empty(), "the audit log has nothing from {sa}");
        for ((g, r, v), codes) in &did {
            // Refused and never allowed: a rule is missing. (A refusal followed by success
            // happens on a fresh control plane while the API server's RBAC cache catches up
            // with new bindings, seen in CI even after `kubectl auth can-i` said yes.)
            let allowed = codes.iter().any(|c| (200..300).contains(c));
            if codes.contains(&403) && !allowed {
                problems.push(format!(
                    "{sa}: {v} {g}/{r} was refused (the chart grants less than the code uses)"
                ));
            } else if codes.contains(&403) {
                println!("{sa}: {v} {g}/{r} refused at first, then allowed");
            }
        }
        for (g, r, v) in &may {
            let exercised = did.contains_key(&(g.clone(), r.clone(), v.clone()));
            let excused = UNEXERCISED
                .iter()
                .any(|(a, eg, er, ev, _)| *a == sa && eg == g && er == r && ev == v);
            if !exercised && !excused {
                problems.push(format!(
                    "{sa}: {v} {g}/{r} is granted and never used (the chart grants more)"
                ));
            }
        }
        let summary: Vec<String> = did.keys().map(|(g, r, v)| format!("{v} {g}/{r}")).collect();
        println!("{sa} used: {}", summary.join(", "));
    }
    ensure!(
        problems.is_empty(),
        "RBAC and code disagree:\n  {}",
        problems.join("\n  ")
    );
    Ok(())
}

/// Each component's scenario, under its account.
async fn scenarios(
    cluster: &Cluster,
    helm: &Path,
    version: &str,
    (sched, port, admin, sets): (&str, u16, u16, &[String]),
    dir: &Path,
) -> Result<()> {
    // The extender: a pod filtered, prioritized and bound through a scheduler of its own.
    let (ext_config, token) = kubeconfig_and_token(cluster, dir, "allot-extender")?;
    let (listen, admin_at) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{admin}"));
    let mut ext = AllotProcess::start_with_env(
        cluster,
        "extender-rbac",
        &["extender", "--listen", &listen, "--admin-listen", &admin_at],
        &[("KUBECONFIG", &ext_config.to_string_lossy())],
    )?;
    ext.wait_ready(&format!("http://{admin_at}/readyz")).await?;
    let _sched = scheduler(helm, version, sched, sets).await?;
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), NS);
    pods.create(&PostParams::default(), &pod("audited", sched, Some(1))?)
        .await?;
    wait_running(&pods, "audited").await?;
    pods.delete("audited", &DeleteParams::default().grace_period(0))
        .await?;

    // The controller: a request created, scaled down, deleted (its finalizer cleans up).
    let (ctl_config, ctl_token) = kubeconfig_and_token(cluster, dir, "allot-controller")?;
    let ctl_admin = format!("127.0.0.1:{}", free_port()?);
    let mut ctl = AllotProcess::start_with_env(
        cluster,
        "controller-rbac",
        &[
            "controller",
            "--lease-namespace",
            NS,
            "--lease-duration-seconds",
            "3",
            "--admin-listen",
            &ctl_admin,
        ],
        &[("KUBECONFIG", &ctl_config.to_string_lossy())],
    )?;
    ctl.wait_ready(&format!("http://{ctl_admin}/readyz"))
        .await?;
    let spec = json!({ "tasks": [task("w", 2, json!({ "cpu": "100m", "memory": "64Mi" }))] });
    create(cluster, NS, "audited", spec).await?;
    bound_pods(cluster, NS, "audited", 2).await?;
    let srs = requests(cluster, NS);
    let scale =
        json!({ "spec": { "tasks": [task("w", 1, json!({ "cpu": "100m", "memory": "64Mi" }))] } });
    srs.patch("audited", &PatchParams::default(), &Patch::Merge(&scale))
        .await?;
    bound_pods(cluster, NS, "audited", 1).await?;
    srs.delete("audited", &DeleteParams::default()).await?;
    poll("the request's finalizer to finish", WAIT, || async {
        Ok(srs.get_opt("audited").await?.is_none().then_some(()))
    })
    .await?;
    ctl.check_alive()?;

    // The agent: one node's telemetry published from the fake NVML.
    let (agent_config, agent_token) = kubeconfig_and_token(cluster, dir, "allot-agent")?;
    let nodes = Api::<Node>::all(cluster.client.clone())
        .list(&ListParams::default().labels("type=kwok"))
        .await?;
    let first = nodes.items.first().context("no kwok node")?;
    let node = first
        .metadata
        .name
        .clone()
        .context("a node without a name")?;
    // Its own model and GPU count, so that the telemetry left behind tells the truth.
    let model = first
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("allot.dev/gpu-model"))
        .cloned()
        .unwrap_or_default();
    let gpus = first
        .status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .and_then(|a| a.get("nvidia.com/gpu"))
        .and_then(|q| q.0.parse().ok())
        .unwrap_or(0);
    let devices = dir.join("devices.json");
    write_devices(&devices, &fake_gpus(&node, &model, gpus, None))?;
    let lib = cargo_artifact(&["-p", "allot-fake-nvml"], "libnvidia_ml_fake.so")?;
    let agent_listen = format!("127.0.0.1:{}", free_port()?);
    let mut agent = AllotProcess::start_with_env(
        cluster,
        "agent-rbac",
        &[
            "agent",
            "--node-name",
            &node,
            "--sample-seconds",
            "1",
            "--heartbeat-seconds",
            "2",
            "--min-write-seconds",
            "1",
            "--listen",
            &agent_listen,
            "--nvml-lib",
            &lib.to_string_lossy(),
        ],
        &[
            ("KUBECONFIG", &agent_config.to_string_lossy()),
            ("ALLOT_FAKE_NVML_CONFIG", &devices.to_string_lossy()),
        ],
    )?;
    // Two heartbeats: the first write and at least one after it.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    agent.check_alive()?;
    // The device plugin, on a node of its own that no kwok runs pods on.
    let plugin_log = plugin::scenario(cluster, dir, &agent_config, &lib).await?;
    ext.check_alive()?;
    // No log line carries a credential.
    for (name, log) in [&ext, &ctl, &agent]
        .map(|p| (p.name.as_str(), p.log.as_path()))
        .into_iter()
        .chain([("agent-rbac-plugin", plugin_log.as_path())])
    {
        let text = std::fs::read_to_string(log)?;
        for t in [&token, &ctl_token, &agent_token] {
            ensure!(
                !text.contains(t.as_str()),
                "{name} logged a service account token"
            );
        }
    }
    Ok(())
}
