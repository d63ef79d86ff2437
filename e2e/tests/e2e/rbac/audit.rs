//! The two sides the RBAC test compares: what the chart's roles grant each ServiceAccount,
//! and what the API server's audit log says each one did.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use serde_json::Value;

use super::NS;

/// One (group, resource, verb).
pub(super) type Grant = (String, String, String);

/// What the chart's roles grant each ServiceAccount of the release.
pub(super) fn grants(objs: &[Value]) -> BTreeMap<String, BTreeSet<Grant>> {
    let rules_of = |kind: &str, name: &str| -> Vec<Value> {
        objs.iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .and_then(|r| r["rules"].as_array().cloned())
            .unwrap_or_default()
    };
    let mut out: BTreeMap<String, BTreeSet<Grant>> = BTreeMap::new();
    for binding in objs
        .iter()
        .filter(|o| o["kind"] == "ClusterRoleBinding" || o["kind"] == "RoleBinding")
    {
        let role = &binding["roleRef"];
        let rules = rules_of(
            role["kind"].as_str().unwrap_or(""),
            role["name"].as_str().unwrap_or(""),
        );
        for subject in binding["subjects"].as_array().into_iter().flatten() {
            let Some(sa) = subject["name"]
                .as_str()
                .filter(|_| subject["kind"] == "ServiceAccount")
            else {
                continue;
            };
            let set = out.entry(sa.to_string()).or_default();
            for rule in &rules {
                let list = |k: &str| -> Vec<String> {
                    rule[k]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                };
                for g in list("apiGroups") {
                    for r in list("resources") {
                        for v in list("verbs") {
                            set.insert((g.clone(), r.clone(), v));
                        }
                    }
                }
            }
        }
    }
    out
}

/// What the audit log says each account of [`NS`] did: (group, resource, verb) -> codes.
pub(super) fn used(log: &str) -> Result<BTreeMap<String, BTreeMap<Grant, BTreeSet<u64>>>> {
    let prefix = format!("system:serviceaccount:{NS}:");
    let mut out: BTreeMap<String, BTreeMap<Grant, BTreeSet<u64>>> = BTreeMap::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let event: Value = serde_json::from_str(line).context("an audit log line is not JSON")?;
        let Some(sa) = event["user"]["username"]
            .as_str()
            .and_then(|u| u.strip_prefix(&prefix))
        else {
            continue;
        };
        let obj = &event["objectRef"];
        let Some(resource) = obj["resource"].as_str() else {
            continue; // discovery and other non-resource paths: open to every account
        };
        let resource = match obj["subresource"].as_str() {
            Some(sub) => format!("{resource}/{sub}"),
            None => resource.to_string(),
        };
        let group = obj["apiGroup"].as_str().unwrap_or("").to_string();
        let verb = event["verb"].as_str().unwrap_or("").to_string();
        let code = event["responseStatus"]["code"].as_u64().unwrap_or(0);
        out.entry(sa.to_string())
            .or_default()
            .entry((group, resource, verb))
            .or_default()
            .insert(code);
    }
    Ok(out)
}
