# certgate: runs its TypeScript directly on Node 24 (type stripping), no build step.
# README "Docker" says how it is built, run and tested (test/container/smoke.sh, in .ci/run).
FROM node:24-bookworm-slim
# tini as PID 1: it passes SIGTERM/SIGINT on to certgate (whose primary drains its workers)
# and reaps orphans that end up with PID 1 (children of `docker exec` commands); Node reaps
# only the processes it forked itself.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tini \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json .npmrc ./
# Production dependencies only: the `node` devDependency pins Node for npm scripts on
# development machines; here Node 24 comes from the base image.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force && rm -rf /root/.npm
COPY bin ./bin
COPY src ./src
# A fixed uid/gid (10001, above the host's own users): a mounted configuration or key must be
# readable by it (README "Docker").
RUN groupadd --system --gid 10001 certgate \
 && useradd --system --uid 10001 --gid certgate --home-dir /data --no-create-home --shell /usr/sbin/nologin certgate \
 && mkdir -p /data /etc/certgate /app/.compile-cache && chown certgate:certgate /data /app/.compile-cache && chmod 0700 /data
USER certgate
# Node's compile cache, filled here with every module certgate loads (types stripped, code
# compiled), as the user that runs it (Node keeps one cache per uid): no process in the
# container loads Node's TypeScript stripper (about 18 MB each) or parses certgate again
# (src/cli.js). Read-only at run time under compose.yaml's read-only root.
ENV NODE_COMPILE_CACHE=/app/.compile-cache
RUN node src/cli.js --help >/dev/null
# The working directory is the data volume: the demo (no --config) writes its development
# PKI to ./certs/dev as `npm start` does, here /data/certs/dev, beside the store.
WORKDIR /data
VOLUME ["/data"]
# 8443 public TLS port; 8444 admin API, /healthz, /metrics (127.0.0.1 unless --admin says
# otherwise); 8445 the managed CA's certificate, CRL and OCSP (127.0.0.1 unless --public).
EXPOSE 8443 8444 8445
# The admin listener's /healthz, over plain HTTP; CERTGATE_HEALTH_URL follows an --admin
# moved to another port.
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.CERTGATE_HEALTH_URL || 'http://127.0.0.1:8444/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# certgate's OpenSSL configuration: one TLS 1.3 session ticket per full handshake (src/dataplane/tls/openssl.cnf);
# V8's young generation at 16 MB per semi-space (src/heapflags.ts).
ENTRYPOINT ["tini", "--", "node", "--openssl-config=/app/src/dataplane/tls/openssl.cnf", "--max-semi-space-size=16", "/app/src/cli.js"]
# No --config: the demo. A real configuration: mount its directory (certgate.yaml and the
# files it names) and name it, e.g.
#   docker run ... -v "$PWD/etc:/etc/certgate:ro" -v certgate-data:/data certgate \
#     serve --data /data --config /etc/certgate/certgate.yaml
CMD ["serve", "--data", "/data"]
