# One image for every jobfleet process; the command picks the role (api or worker).
# Packages export TypeScript source and run through tsx, so there is no build stage to drift.
FROM node:24-bookworm-slim AS base
# pg_dump/pg_restore for the backup queue; tini reaps children and forwards SIGTERM.
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client tini ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production

FROM base AS deps
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
COPY packages/kinds/package.json packages/kinds/
# One line per workspace (keep in sync with apps/* and packages/*): npm ci needs every manifest.
# Dev dependencies stay: tsx runs the sources (and node@24 is the pinned runtime).
RUN npm ci --no-audit --no-fund

FROM base
COPY --from=deps /app/node_modules ./node_modules
COPY . .
# A named volume mounted here starts with this ownership, so the node user can write backups.
RUN mkdir -p /backups && chown node:node /backups
USER node
EXPOSE 3000 9464
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "--import", "tsx", "apps/api/src/main.ts"]
