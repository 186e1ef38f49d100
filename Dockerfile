# syntax=docker/dockerfile:1
# aofq in two stages on the official Node.js LTS image (Debian bookworm, slim).
# test/integration/dockerfile.test.ts runs this file's RUN, ENTRYPOINT/CMD and HEALTHCHECK commands.

# Build stage: compile TypeScript to dist/, and the parsed contract beside it.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json openapi.yaml ./
COPY src ./src
COPY scripts ./scripts
# tsc, then dist/openapi.json: the contract parsed once, so that no start parses the YAML.
RUN npm run build

# Final stage: production dependencies, the compiled code and the contract, nothing else.
FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY api ./api
COPY openapi.yaml ./
# The data belongs to the image's unprivileged `node` user: uid and gid 1000, written as numbers so
# that Kubernetes' runAsNonRoot can check them. A new named volume takes this ownership.
RUN mkdir -p /data && chown 1000:1000 /data
USER 1000:1000
VOLUME /data
EXPOSE 7700
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.AOFQ_PORT||7700)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# The image is the `aofq` command (`docker run aofq check-aof ...`); by default a leader on every
# interface, which aofq refuses without tokens: run it with AOFQ_TOKENS=name:role:secret,...
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["server", "--dir", "/data", "--host", "0.0.0.0"]
