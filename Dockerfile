# The image of `brick csi` (and of every other `brick` command): Node 20 on Debian bookworm-slim
# with the host storage tools the connectors and the LVM backend run. Built from the repository
# root:   docker build -t brick:0.1.0 .
# The manifests in deploy/kubernetes/ run it as `brick csi ...` (ENTRYPOINT is the CLI).

# Stage 1: compile the TypeScript (dev dependencies, no native builds needed for tsc).
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
COPY sims ./sims
COPY tools ./tools
COPY bench ./bench
COPY test ./test
COPY proto ./proto
RUN npm run build

# Stage 2: production dependencies only. better-sqlite3 and fs-ext are native modules, so their
# install scripts must run (prebuilt binaries, else node-gyp with the tools below); the package's
# own `prepare` script (a full tsc build) must not, hence its removal from this stage's copy.
FROM node:20-bookworm-slim AS deps
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm pkg delete scripts.prepare && npm ci --omit=dev && npm cache clean --force

# Stage 3: the runtime.
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      open-iscsi multipath-tools nvme-cli e2fsprogs xfsprogs util-linux lvm2 sg3-utils kmod ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/dist/sims ./dist/sims
COPY proto ./proto
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["--help"]
