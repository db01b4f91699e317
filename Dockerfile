# syntax=docker/dockerfile:1
# The Sluice operator image: static binaries on distroless, running as user 65532.
#   docker build -t <registry>/sluice:0.1.0 .
# docs/install.md says how it is checked and used by the Helm chart.

# The toolchain the static build was checked with (the crate needs 1.89 or newer).
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
# Binaries of the crate to ship: the operator, and the kubectl plugin so that one image carries
# the matching version of both (`docker cp` it out of a created container).
ARG BINS="sluice kubectl-sluice"
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY benches benches
COPY src src
# A static glibc binary: crt-static on the gnu target; TLS is rustls only (ring and aws-lc,
# no OpenSSL). Naming --target keeps build scripts and proc macros dynamic, as they must be.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eu; \
    target="$(uname -m)-unknown-linux-gnu"; \
    bin_args=""; for bin in $BINS; do bin_args="$bin_args --bin $bin"; done; \
    RUSTFLAGS="-C target-feature=+crt-static" \
      cargo build --release --locked --target "$target" $bin_args; \
    for bin in $BINS; do \
      install -D -s -m 0755 "target/$target/release/$bin" "/out/$bin"; \
      if readelf -d "/out/$bin" | grep -q NEEDED; then echo "$bin needs shared libraries" >&2; exit 1; fi; \
    done

# distroless/static: CA certificates, /etc/passwd with nonroot (65532), no shell, no libc.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/sluice", "run"]
