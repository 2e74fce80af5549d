# syntax=docker/dockerfile:1
#
# paystream image: every binary in one small runtime image.
#   ingress, worker        the system (compose.yaml, k8s/)
#   telegram-sim, heleket-sim   the simulators (compose profile "sandbox")
# The schema is embedded in the worker binary (`worker migrate`), so the image carries no
# other files.
#
#   docker build -t paystream:latest .

ARG RUST_VERSION=1
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
# The workspace needs every member's manifest to resolve, so the whole (filtered, see
# .dockerignore) tree goes in. The caches keep the registry and incremental builds between
# runs with BuildKit.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ingress -p workers -p sim --bins \
 && mkdir -p /out \
 && for bin in ingress worker telegram-sim heleket-sim; do \
        cp "target/release/$bin" /out/ && strip --strip-debug "/out/$bin"; \
    done

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# ca-certificates: the system CA bundle (reqwest is built with rustls and webpki-roots, which
# carry their own roots; the bundle is there for anything else and for adding a private CA).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 paystream \
 && useradd --system --uid 10001 --gid paystream --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin paystream \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/paystream/session
# /var/lib/paystream/session: the MTProto gateway's session (its auth key), owned by the
# runtime user so that a fresh named volume mounted there inherits that ownership.
COPY --from=build /out/ /usr/local/bin/
USER 10001:10001
# ingress: INGRESS_ADDR (0.0.0.0:8080); worker: WORKER_METRICS_ADDR (0.0.0.0:9090)
EXPOSE 8080 9090
ENV RUST_LOG=info
# No ENTRYPOINT: each service names its binary (`ingress`, `worker --roles payments`, ...).
CMD ["ingress"]
