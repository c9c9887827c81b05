# The Vexil server image: `vexil serve` as a non-root user, listening on 0.0.0.0:8080, with
# SQLite in the /data volume unless VEXIL_DATABASE_URL names PostgreSQL.
#
#   docker build -t vexil:local .
#   docker run -d --name vexil -p 8080:8080 -v vexil-data:/data vexil:local
#
# See docs/deploying.md (building, running, the variables) and docs/operations.md.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---- builder ---------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
WORKDIR /src

# Dependencies first, so that a change to Vexil's own sources does not rebuild them: the
# workspace's manifests and lock file, with empty stand-ins for every member's sources (and
# for the benchmarks its manifests name). A member added to the workspace needs its
# manifest copied here too: without it cargo stops the build (a path dependency's manifest
# missing, or a lock file that `--locked` forbids changing).
COPY Cargo.toml Cargo.lock ./
COPY crates/vexil/Cargo.toml crates/vexil/
COPY crates/vexil-core/Cargo.toml crates/vexil-core/
COPY crates/vexil-server/Cargo.toml crates/vexil-server/
COPY crates/vexil-sdk/Cargo.toml crates/vexil-sdk/
COPY examples/sdk-quickstart/Cargo.toml examples/sdk-quickstart/
RUN set -eux; \
    for lib in crates/vexil-core crates/vexil-server crates/vexil-sdk; do \
        mkdir -p "$lib/src"; : > "$lib/src/lib.rs"; \
    done; \
    for bin in crates/vexil examples/sdk-quickstart; do \
        mkdir -p "$bin/src"; echo 'fn main() {}' > "$bin/src/main.rs"; \
    done; \
    mkdir -p crates/vexil-core/benches crates/vexil-sdk/benches; \
    for bench in crates/vexil-core/benches/evaluate.rs crates/vexil-sdk/benches/evaluate.rs \
                 crates/vexil-sdk/benches/memory.rs; do \
        echo 'fn main() {}' > "$bench"; \
    done; \
    cargo build --release --locked -p vexil

# Then the real sources. The stand-ins' artifacts are removed first (the workspace members'
# only, not the dependencies'), so that no file's age can make cargo keep a stand-in.
COPY crates crates
COPY examples/sdk-quickstart examples/sdk-quickstart
RUN set -eux; \
    cargo clean --release --locked --workspace; \
    cargo build --release --locked -p vexil; \
    install -D -m 0755 target/release/vexil /out/vexil; \
    /out/vexil --version

# ---- runtime ---------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim

# ca-certificates: the server's own HTTPS (OpenID Connect, webhooks) uses the system's trust
# store. curl: only for the HEALTHCHECK below (vexil has no client subcommand of its own).
# Versions are not pinned: the release's security updates are wanted at every rebuild.
# hadolint ignore=DL3008
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 10001 vexil; \
    useradd --system --uid 10001 --gid vexil --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin vexil; \
    install -d -o vexil -g vexil -m 0700 /data

COPY --from=builder /out/vexil /usr/local/bin/vexil

LABEL org.opencontainers.image.title="vexil" \
      org.opencontainers.image.description="Vexil, a self-hosted feature flag service" \
      org.opencontainers.image.licenses="Apache-2.0"

# Every interface inside the container; SQLite in the volume (set VEXIL_DATABASE_URL to
# postgres://… for several nodes). Secrets (VEXIL_BOOTSTRAP_TOKEN, …) come from `docker run
# -e`/`--env-file` or the orchestrator, never from the image.
ENV VEXIL_LISTEN=0.0.0.0:8080 \
    VEXIL_DATABASE_URL=sqlite:///data/vexil.db

WORKDIR /data
VOLUME ["/data"]
USER 10001:10001
EXPOSE 8080

# Liveness: /health answers 200 while the process serves requests (readiness, /ready, also
# needs the database: see docs/operations.md). The port is the one VEXIL_LISTEN names.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/bin/sh", "-c", "curl -fsS -o /dev/null \"http://127.0.0.1:${VEXIL_LISTEN##*:}/health\" || exit 1"]

# SIGTERM (docker stop) drains: SSE streams end, requests in flight finish.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/vexil"]
CMD ["serve"]
