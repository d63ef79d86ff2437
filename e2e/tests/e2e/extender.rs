//! e2e scenarios of `allot extender` (added with its issue).
