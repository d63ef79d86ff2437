# syntax=docker/dockerfile:1
# allot: one binary (extender, controller, agent, offline tools) on a glibc distroless base.
# glibc rather than static musl because the node agent loads libnvidia-ml at run time.

FROM rust:1.95-bookworm AS builder
WORKDIR /build
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Cargo.toml declares the criterion bench explicitly, so cargo refuses the manifest without it.
COPY benches ./benches
# Embedded at compile time (include_str!) by the bundled simulator traces.
COPY traces ./traces
# Cache mounts keep the registry and target directory between builds (a cold release build
# of the kube stack takes minutes); the binary is copied out because the mount is not kept.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked --bin allot \
    && cp target/release/allot /allot

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /allot /allot
USER nonroot
ENTRYPOINT ["/allot"]
