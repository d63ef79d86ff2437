//! allot: GPU-aware placement for Kubernetes.
//!
//! The pure core (`model`, `alloc`, `policy`, `sim`, `rng`, `backoff`) has no Kubernetes,
//! HTTP or async dependency (`.ci/core-check` proves it); the cluster-facing layers (`crd`,
//! ...) sit behind the default `k8s` feature. `cli` wires both into the `allot` binary.

pub mod alloc;
pub mod backoff;
pub mod learn;
pub mod model;
pub mod names;
pub mod policy;
pub mod rng;
pub mod sim;
pub mod snapshot;

#[cfg(feature = "k8s")]
pub mod agent;
pub mod cli;
#[cfg(feature = "k8s")]
pub mod controller;
#[cfg(feature = "k8s")]
pub mod crd;
#[cfg(feature = "k8s")]
pub mod extender;
#[cfg(feature = "k8s")]
pub mod live;
#[cfg(feature = "k8s")]
pub mod process;
