//! e2e scenarios of `allot agent` (added with its issue).
