# syntax=docker/dockerfile:1.7
# The `panopticon` image: a release build of package panopticon on Debian bookworm, run on
# distroless/cc (glibc, libgcc; no shell, no package manager) as UID/GID 65532.
#   docker build -f docker/panopticon.Dockerfile -t panopticon:dev .        (from the repository root)
# e2e/kind/up builds it; e2e/lint-workflows checks this file (pinned bases, numeric non-root USER,
# exec-form ENTRYPOINT) and runs docker/runtime-libs against a local build.

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# The registry and target/ live in BuildKit cache mounts (shared by both images, so the second
# build reuses the first one's dependencies); the binary and the shared libraries it needs beyond
# distroless/cc (see docker/runtime-libs) are copied out to /out/rootfs in the same step.
RUN --mount=type=cache,id=panopticon-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=panopticon-cargo-target,target=/src/target \
    cargo build --release --locked -p panopticon --bin panopticon \
    && install -D -m 0755 target/release/panopticon /out/rootfs/usr/local/bin/panopticon \
    && docker/runtime-libs /out/rootfs/usr/local/bin/panopticon /out/rootfs

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="panopticon" \
      org.opencontainers.image.description="Panopticon: the ingest, rollup, query and alert components of the APM backend (one binary, a subcommand each)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/panopticon-io/panopticon" \
      org.opencontainers.image.url="https://github.com/panopticon-io/panopticon" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
COPY --from=builder /out/rootfs/ /
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/panopticon"]
