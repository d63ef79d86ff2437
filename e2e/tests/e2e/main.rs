//! End-to-end tests against the real control plane started by `e2e/up` (kube-apiserver, etcd,
//! kube-controller-manager, kube-scheduler with the `allot` profile, kwok GPU nodes).
//!
//! Every test is `#[ignore = "needs e2e/up"]`, so `cargo test --workspace` lists them as
//! ignored, not as passed. `e2e/run` starts the control plane, sets `ALLOT_E2E_KUBECONFIG` and
//! runs them with `--include-ignored`. A test run without `ALLOT_E2E_KUBECONFIG` (e.g.
//! `cargo test -p allot-e2e -- --include-ignored` with no `e2e/up`) fails, saying so.
//! Each test works in its own temporary namespace, removed at its end.

mod agent;
mod chart;
mod chart_policy;
mod controller;
mod crds;
mod device_plugin;
mod extender;
mod faults;
mod gpu_map;
mod history;
mod monitoring;
mod nodes;
mod own;
mod rbac;
mod scheduling;
mod snapshot;
mod support;
mod tls;
