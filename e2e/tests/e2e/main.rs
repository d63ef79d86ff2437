//! End-to-end tests against the real control plane started by `e2e/up` (kube-apiserver, etcd,
//! kube-controller-manager, kube-scheduler with the `allot` profile, kwok GPU nodes).
//!
//! Every test skips (passes, saying why) unless `ALLOT_E2E_KUBECONFIG` points at that control
//! plane, so `cargo test --workspace` passes on a machine without one; `e2e/run` sets it.
//! Each test works in its own temporary namespace, removed at its end.

mod agent;
mod chart;
mod controller;
mod crds;
mod extender;
mod nodes;
mod scheduling;
mod support;
