# certgate: runs its TypeScript directly on Node 24 (type stripping), no build step.
FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# The `node` devDependency is for development machines; the image has Node 24 already.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY bin ./bin
COPY src ./src
RUN groupadd --system certgate && useradd --system --gid certgate --home /app certgate \
 && mkdir -p /data && chown certgate:certgate /data
USER certgate
VOLUME ["/data"]
EXPOSE 8443 8444
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8444/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "src/cli.ts"]
CMD ["serve", "--listen", "0.0.0.0:8443", "--admin", "127.0.0.1:8444", "--data", "/data", "--config", "/etc/certgate/certgate.yaml"]
