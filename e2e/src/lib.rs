//! allot's end-to-end tests live in `tests/`: they run against the real control plane that
//! `e2e/up` starts (see `e2e/README.md`) and skip when `ALLOT_E2E_KUBECONFIG` is not set.
//! The library holds only what the tests share with other packages' tests.

pub mod cargo;
pub mod kubelet_dm;
