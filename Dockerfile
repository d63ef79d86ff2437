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
    && cp target/release/allot /allot

# Distroless-style runtime: glibc and nothing else we use; no shell in the entrypoint path.
FROM debian:bookworm-slim
COPY --from=builder /allot /usr/local/bin/allot
# 65532 is the conventional "nonroot" uid/gid of distroless images.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/allot"]
