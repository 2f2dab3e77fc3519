# ws-daemon in a container: the binary alone, built here by deno compile.
#   docker build -t ws-daemon .
#   docker run -v /srv/wsd:/usr/src/app -p 3006:3006 ws-daemon
# The prefix /usr/src/app holds config.json and scripts/ (by volume), and
# setup.sh, run once at the first start if present. The local listener is
# TCP port 9007 (WSDAEMON_LOCAL_TCP), as the original's image has it.

FROM debian:bookworm-slim AS builder
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY . .
# The pinned Deno from npm (scripts/install-deno.sh), then one binary.
RUN make build

FROM debian:bookworm-slim
COPY --from=builder /build/ws-daemon /usr/local/bin/ws-daemon
COPY docker/entrypoint.sh /usr/local/bin/ws-daemon-entrypoint
ENV WSDAEMON_PREFIX=/usr/src/app \
    WSDAEMON_LOCAL_TCP=0.0.0.0:9007
WORKDIR /usr/src/app
VOLUME /usr/src/app
EXPOSE 3006 9007
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/ws-daemon-entrypoint"]
CMD ["run"]
