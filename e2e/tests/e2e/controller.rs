//! e2e scenarios of `allot controller` (added with its issue).
