# One image for every jobfleet process; the command picks the role (api, worker, migrate, CLI).
# The build stage compiles the TypeScript (`npm run build`: esbuild bundles into dist/); the image
# holds production dependencies only, the bundles with their assets, and the launcher.
FROM node:24-bookworm-slim AS manifests
WORKDIR /app
COPY package.json package-lock.json ./
COPY apps/api/package.json apps/api/
COPY apps/worker/package.json apps/worker/
COPY apps/standalone/package.json apps/standalone/
COPY packages/config/package.json packages/config/
COPY packages/contracts/package.json packages/contracts/
COPY packages/db/package.json packages/db/
COPY packages/queue/package.json packages/queue/
COPY packages/observability/package.json packages/observability/
COPY packages/calendar/package.json packages/calendar/
COPY packages/afip/package.json packages/afip/
COPY packages/locks/package.json packages/locks/
COPY packages/backup/package.json packages/backup/
COPY packages/resilience/package.json packages/resilience/
COPY packages/secrets/package.json packages/secrets/
COPY packages/group-commit/package.json packages/group-commit/
COPY packages/kinds/package.json packages/kinds/
# One line per workspace (keep in sync with apps/* and packages/*): npm ci needs every manifest.

FROM manifests AS build
# Dev dependencies too: esbuild (and the node@24 the npm scripts run on).
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build

FROM manifests AS production-dependencies
# The same lockfile layout less dev packages, which is what the build checked its externals against.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:24-bookworm-slim
# pg_dump/pg_restore for the backup queue; tini reaps children and forwards SIGTERM.
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client tini ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
COPY --from=production-dependencies /app ./
COPY --from=build /app/dist ./dist
# `npm run jobfleet -- …` and the other npm scripts run dist/ through it (NODE_ENV=production).
COPY scripts/start.ts scripts/entry-points.ts ./scripts/
# A named volume mounted here starts with this ownership, so the node user can write backups.
RUN mkdir -p /backups && chown node:node /backups
# The node user by number, so Kubernetes can check runAsNonRoot against the image.
USER 1000:1000
EXPOSE 3000 9464
# Alive = answers /health/live: the API on API_PORT, a worker on WORKER_METRICS_PORT, whichever
# this container runs (Kubernetes ignores this and uses its probes; see infra/k8s).
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "Promise.any([process.env.API_PORT || 3000, process.env.WORKER_METRICS_PORT || 9464].map((port) => fetch(`http://127.0.0.1:${port}/health/live`).then((r) => { if (!r.ok) throw new Error(String(r.status)); }))).then(() => process.exit(0), () => process.exit(1))"]
# tini as PID 1 forwards SIGTERM to node and reaps children (pg_dump).
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "--enable-source-maps", "dist/api.js"]
