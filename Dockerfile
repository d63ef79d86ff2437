# syntax=docker/dockerfile:1
# allot: one binary (extender, controller, agent, offline tools) on a minimal glibc base,
# running as a non-root user. glibc rather than static musl because the node agent loads
# libnvidia-ml at run time.

FROM rust:1.95-bookworm AS builder
WORKDIR /build
# The whole workspace (manifests of every member, sources, the traces the simulator embeds);
# .dockerignore keeps target/ and local output out.
COPY . .
# Cache mounts keep the registry and target directory between builds (a cold release build
# of the kube stack takes minutes); the binary is copied out because the mount is not kept.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked --bin allot \
    && cp target/release/allot /allot \
    && strip /allot

# Runtime: Debian's slim glibc base. Not `scratch` with glibc copied in: the NVIDIA container
# toolkit injects libnvidia-ml into the agent's container and runs the image's own `ldconfig`
# to make it loadable, which scratch lacks. The binary is stripped: 152 MB with line tables
# (the release profile keeps them for profiling) -> 24 MB (`strip`, 2026-12-05, x86_64).
# Untested here (no container engine on the development machine); the binary itself is what
# every test runs.
FROM debian:bookworm-slim
COPY --from=builder /allot /usr/local/bin/allot
# 65532 is the conventional "nonroot" uid/gid of distroless images.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/allot"]
