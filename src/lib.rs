//! allot: GPU-aware placement for Kubernetes.
//!
//! The pure core (`model`, `policy`, `sim`, `rng`) has no Kubernetes, HTTP or async
//! dependency; the cluster-facing layers (`crd`, ...) sit behind the `k8s` feature.

pub mod model;
pub mod policy;
pub mod rng;
pub mod sim;

pub mod cli;
#[cfg(feature = "k8s")]
pub mod crd;
