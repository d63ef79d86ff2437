//! The chart's workload history (`extender.history`, issue 20): rendered by `helm template`
//! with its default `emptyDir`, with a PVC of the chart's or a claim of the user's, and with a
//! key Secret; each time the volume, its mount, the extender's `--history-*` flags and the
//! Role/RoleBinding that let the extender hold the `allot-history` Lease. Needs only helm.

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};

use super::values::helm;
use super::{find, objects, render};

const NS: &str = "allot-system";
const EXTENDER: &str = "allot-extender";
const DIR: &str = "/var/lib/allot/history";
const KEY_DIR: &str = "/etc/allot/history-key";
const ROLE: &str = "allot-extender-history-lease";

/// What one rendering gave for the extender: its objects, its container's args, mounts and
/// the pod's volumes.
struct Rendered {
    objs: Vec<Value>,
    args: Vec<String>,
    mounts: Vec<Value>,
    volumes: Vec<Value>,
}

impl Rendered {
    fn new(helm: &std::path::Path, version: &str, sets: &[&str]) -> Result<Self> {
        let objs = objects(&render(helm, version, NS, sets)?)?;
        let d = find(&objs, "Deployment", EXTENDER).context("no extender Deployment")?;
        let pod = &d["spec"]["template"]["spec"];
        let c = pod["containers"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == "extender"))
            .context("no extender container")?;
        let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
        let args = list(&c["args"])
            .iter()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect();
        let (mounts, volumes) = (list(&c["volumeMounts"]), list(&pod["volumes"]));
        Ok(Self {
            objs,
            args,
            mounts,
            volumes,
        })
    }

    fn history_args(&self) -> Vec<&str> {
        self.args
            .iter()
            .map(String::as_str)
            .filter(|a| a.starts_with("--history-"))
            .collect()
    }

    fn named<'a>(list: &'a [Value], name: &str) -> Option<&'a Value> {
        list.iter().find(|v| v["name"] == name)
    }

    fn volume(&self, name: &str) -> Option<&Value> {
        Self::named(&self.volumes, name)
    }

    fn mount(&self, name: &str) -> Option<&Value> {
        Self::named(&self.mounts, name)
    }

    /// The history volume mounted read-write at DIR, the Lease namespace given once, and the
    /// Role and RoleBinding of the `allot-history` Lease bound to the extender's account.
    fn check_recording(&self) -> Result<()> {
        let m = self.mount("history").context("no history mount")?;
        ensure!(
            m["mountPath"] == DIR && m["readOnly"] != true,
            "history mount: {m}"
        );
        let lease_ns = self
            .args
            .iter()
            .filter(|a| a.starts_with("--lease-namespace="))
            .collect::<Vec<_>>();
        ensure!(
            lease_ns == [&format!("--lease-namespace={NS}")],
            "the Lease namespace, once: {lease_ns:?}"
        );
        let role = find(&self.objs, "Role", ROLE).context("no history Lease Role")?;
        ensure!(role["metadata"]["namespace"] == NS, "{role}");
        let rules = role["rules"].as_array().context("Role rules")?;
        ensure!(
            rules
                .iter()
                .any(|r| r["apiGroups"] == json!(["coordination.k8s.io"])
                    && r["resources"] == json!(["leases"])
                    && ["get", "create", "update"].iter().all(|v| r["verbs"]
                        .as_array()
                        .is_some_and(|vs| vs.contains(&json!(v))))),
            "the Role does not let the extender get, create and renew its Lease: {rules:?}"
        );
        let rb = find(&self.objs, "RoleBinding", ROLE).context("no history Lease RoleBinding")?;
        let account = find(&self.objs, "Deployment", EXTENDER)
            .map(|d| d["spec"]["template"]["spec"]["serviceAccountName"].clone())
            .context("extender account")?;
        ensure!(
            rb["metadata"]["namespace"] == NS
                && rb["roleRef"]
                    == json!({ "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE })
                && rb["subjects"]
                    == json!([{ "kind": "ServiceAccount", "name": account, "namespace": NS }]),
            "RoleBinding: {rb}"
        );
        Ok(())
    }
}

#[test]
#[ignore = "needs e2e/up"]
fn the_history_renders_on_an_empty_dir_by_default_with_its_lease_role() -> Result<()> {
    let Some((helm, version)) =
        helm("the_history_renders_on_an_empty_dir_by_default_with_its_lease_role")?
    else {
        return Ok(());
    };
    // Off by default: no flag, volume, mount or Role.
    let off = Rendered::new(&helm, &version, &[])?;
    ensure!(off.history_args().is_empty(), "{:?}", off.history_args());
    ensure!(off.volume("history").is_none() && off.mount("history").is_none());
    ensure!(
        find(&off.objs, "Role", ROLE).is_none() && find(&off.objs, "RoleBinding", ROLE).is_none()
    );

    let on = Rendered::new(&helm, &version, &["extender.history.enabled=true"])?;
    ensure!(
        on.history_args()
            == [
                "--history-dir=/var/lib/allot/history",
                "--history-max-bytes=1Gi",
                "--history-file-bytes=16Mi",
            ],
        "names hashed under a key made in the directory: {:?}",
        on.history_args()
    );
    let v = on.volume("history").context("no history volume")?;
    ensure!(
        v["emptyDir"] == json!({ "sizeLimit": "1280Mi" }) && v["persistentVolumeClaim"].is_null(),
        "{v}"
    );
    ensure!(on.volume("history-key").is_none() && on.mount("history-key").is_none());
    ensure!(find(&on.objs, "PersistentVolumeClaim", "allot-extender-history").is_none());
    on.check_recording()?;

    let sized = Rendered::new(
        &helm,
        &version,
        &[
            "extender.history.enabled=true",
            "extender.history.sizeLimit=3Gi",
            "extender.history.maxBytes=2Gi",
            "extender.history.fileBytes=64Mi",
        ],
    )?;
    let v = sized.volume("history").context("no history volume")?;
    ensure!(v["emptyDir"] == json!({ "sizeLimit": "3Gi" }), "{v}");
    ensure!(
        sized.history_args()[1..] == ["--history-max-bytes=2Gi", "--history-file-bytes=64Mi"],
        "{:?}",
        sized.history_args()
    );
    // With the controller in the extender process the Lease namespace is still given once.
    let embedded = Rendered::new(
        &helm,
        &version,
        &[
            "extender.history.enabled=true",
            "controller.enabled=true",
            "controller.embedded=true",
        ],
    )?;
    ensure!(embedded.args.iter().any(|a| a == "--controller"));
    embedded.check_recording()
}

#[test]
#[ignore = "needs e2e/up"]
fn the_history_renders_on_a_claim_of_the_charts_or_the_users() -> Result<()> {
    let Some((helm, version)) = helm("the_history_renders_on_a_claim_of_the_charts_or_the_users")?
    else {
        return Ok(());
    };
    let own = Rendered::new(
        &helm,
        &version,
        &[
            "extender.history.enabled=true",
            "extender.history.persistence.enabled=true",
            "extender.history.persistence.storageClass=fast",
            "extender.history.persistence.size=5Gi",
        ],
    )?;
    let pvc = find(&own.objs, "PersistentVolumeClaim", "allot-extender-history")
        .context("no history PVC rendered")?;
    ensure!(
        pvc["metadata"]["namespace"] == NS
            && pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
            && pvc["spec"]["accessModes"] == json!(["ReadWriteOnce"])
            && pvc["spec"]["storageClassName"] == "fast"
            && pvc["spec"]["resources"]["requests"]["storage"] == "5Gi",
        "PVC: {pvc}"
    );
    let v = own.volume("history").context("no history volume")?;
    ensure!(
        v["persistentVolumeClaim"] == json!({ "claimName": "allot-extender-history" })
            && v["emptyDir"].is_null(),
        "{v}"
    );
    ensure!(own.history_args()[0] == "--history-dir=/var/lib/allot/history");
    own.check_recording()?;

    // The default class and access mode when none is given.
    let plain = Rendered::new(
        &helm,
        &version,
        &[
            "extender.history.enabled=true",
            "extender.history.persistence.enabled=true",
        ],
    )?;
    let pvc = find(
        &plain.objs,
        "PersistentVolumeClaim",
        "allot-extender-history",
    )
    .context("no history PVC rendered")?;
    ensure!(
        pvc["spec"]["storageClassName"].is_null()
            && pvc["spec"]["resources"]["requests"]["storage"] == "2Gi",
        "PVC: {pvc}"
    );

    let existing = Rendered::new(
        &helm,
        &version,
        &[
            "extender.history.enabled=true",
            "extender.history.persistence.enabled=true",
            "extender.history.persistence.existingClaim=shared-history",
        ],
    )?;
    ensure!(
        !existing
            .objs
            .iter()
            .any(|o| o["kind"] == "PersistentVolumeClaim"),
        "a PVC rendered beside an existing claim"
    );
    let v = existing.volume("history").context("no history volume")?;
    ensure!(
        v["persistentVolumeClaim"] == json!({ "claimName": "shared-history" }),
        "{v}"
    );
    existing.check_recording()?;
    // Persistence without the history: nothing at all.
    let off = Rendered::new(
        &helm,
        &version,
        &["extender.history.persistence.enabled=true"],
    )?;
    ensure!(
        !off.objs
            .iter()
            .any(|o| o["kind"] == "PersistentVolumeClaim")
            && off.volume("history").is_none()
    );
    Ok(())
}

#[test]
#[ignore = "needs e2e/up"]
fn the_history_key_comes_from_the_named_secret_unless_names_are_plain() -> Result<()> {
    let test = "the_history_key_comes_from_the_named_secret_unless_names_are_plain";
    let Some((helm, version)) = helm(test)? else {
        return Ok(());
    };
    let keyed = Rendered::new(
        &helm,
        &version,
        &[
            "extender.history.enabled=true",
            "extender.history.keySecret=allot-history-key",
        ],
    )?;
    ensure!(
        keyed
            .history_args()
            .contains(&"--history-key-file=/etc/allot/history-key/key")
            && !keyed.history_args().contains(&"--history-plain-names"),
        "{:?}",
        keyed.history_args()
    );
    let v = keyed.volume("history-key").context("no key volume")?;
    ensure!(
        v["secret"]
            == json!({ "secretName": "allot-history-key", "items": [{ "key": "key", "path": "key" }] }),
        "{v}"
    );
    let m = keyed.mount("history-key").context("no key mount")?;
    ensure!(m["mountPath"] == KEY_DIR && m["readOnly"] == true, "{m}");
    keyed.check_recording()?;

    // Plain names need no key: no Secret mounted, no key file.
    let plain = Rendered::new(
        &helm,
        &version,
        &[
            "extender.history.enabled=true",
            "extender.history.keySecret=allot-history-key",
            "extender.history.plainNames=true",
        ],
    )?;
    let args = plain.history_args();
    ensure!(
        args.contains(&"--history-plain-names")
            && !args.iter().any(|a| a.starts_with("--history-key-file")),
        "{args:?}"
    );
    ensure!(plain.volume("history-key").is_none() && plain.mount("history-key").is_none());
    plain.check_recording()
}
