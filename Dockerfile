# syntax=docker/dockerfile:1
# The Logbook server image: the `logbook` binary built in release mode from the
# committed Cargo.lock, on a slim Debian that holds only what it needs at run
# time (glibc and libgcc: librdkafka is built from its C sources without TLS,
# SASL or compression libraries, SQLite is bundled, TLS is rustls with ring).
#
#   docker build -t logbook .
#   docker run -p 8080:8080 -v logbook-data:/var/lib/logbook logbook
#
# See "Run in Docker" in the README.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
# The workspace is crates/* (the fuzz targets, SDKs and client tests are not
# part of it), so the manifests and the crates are the whole build input.
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
# The cache mounts keep crates.io downloads and compiled dependencies between
# builds; the binary is copied out because the target cache is not part of the
# image. The full rust image has the C compiler, make and perl that
# librdkafka's build uses.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p cli --bin logbook \
    && install -D -m 0755 target/release/logbook /out/logbook

FROM debian:${DEBIAN_RELEASE}-slim
# A fixed numeric uid, so Kubernetes can check runAsNonRoot and volumes can be
# prepared for it. The data directory is private to it (Logbook creates it 0700
# anyway). /etc/logbook/audit is where a deployment with a PostgreSQL store
# keeps the shared checkpoint signing key (audit.key_file); an empty named
# volume mounted there takes this directory's owner.
RUN groupadd --system --gid 10001 logbook \
    && useradd --system --uid 10001 --gid logbook --no-create-home \
        --home-dir /var/lib/logbook --shell /usr/sbin/nologin logbook \
    && install -d -o logbook -g logbook -m 0700 /var/lib/logbook /etc/logbook/audit
COPY --from=build /out/logbook /usr/local/bin/logbook
COPY deploy/docker/healthcheck /usr/local/bin/logbook-healthcheck

# Listen on every interface inside the container; the data directory is the
# volume. Every other setting is a LOGBOOK_* variable or a TOML file
# (LOGBOOK_CONFIG); `logbook serve --help` lists them.
ENV LOGBOOK_LISTEN=0.0.0.0:8080 \
    LOGBOOK_DATA_DIR=/var/lib/logbook
USER 10001:10001
WORKDIR /var/lib/logbook
VOLUME ["/var/lib/logbook"]
EXPOSE 8080

# Liveness only (the process answers HTTP): /readyz would mark the container
# unhealthy while the queue is full, which is backpressure, not a fault.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/logbook-healthcheck"]

# logbook handles SIGTERM itself: it stops accepting, answers the requests in
# flight and commits before it exits.
ENTRYPOINT ["/usr/local/bin/logbook"]
CMD ["serve"]
