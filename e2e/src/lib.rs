//! allot's end-to-end tests live in `tests/`: they run against the real control plane that
//! `e2e/up` starts (see `e2e/README.md`) and skip when `ALLOT_E2E_KUBECONFIG` is not set.
//! This library is empty on purpose: a package needs one target besides its tests.
