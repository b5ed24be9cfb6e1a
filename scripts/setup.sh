#!/usr/bin/env bash
# Prepares a checkout to build and run plans: system packages, npm packages, the native addon.
# Idempotent: each step checks first and does nothing when there is nothing to do.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*"; }

packages=(libopenblas-dev openmpi-bin libopenmpi-dev python3-torch chromium libboost-context-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    as_root=()
  elif command -v sudo >/dev/null; then
    as_root=(sudo)
  else
    say "missing system packages: ${missing[*]}; install them as root (apt-get install ${missing[*]}) and rerun" >&2
    exit 1
  fi
  say "installing ${missing[*]}"
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
  say "system packages present"
fi

# npm install is quick when nothing changed, and it is the only reliable staleness check.
say "npm install"
npm install --no-audit --no-fund --loglevel=error

# node-gyp comes with npm. Pointing it at the headers installed beside node keeps it from
# downloading them, so the build works offline.
say "building the native addon"
if command -v node-gyp >/dev/null; then
  node_gyp=(node-gyp)
else
  bundled="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"
  [[ -f $bundled ]] || { say "node-gyp not found (it ships with npm); install it with npm install -g node-gyp" >&2; exit 1; }
  node_gyp=(node "$bundled")
fi
node_prefix=$(node -p 'require("path").resolve(process.execPath, "../..")')
gyp_args=(--loglevel=warn)
if [[ -f $node_prefix/include/node/node_api.h ]]; then gyp_args+=("--nodedir=$node_prefix"); fi
cd native
# Configure only when needed; `build` is an incremental make, so an unchanged addon costs nothing.
if [[ ! -f build/Makefile || binding.gyp -nt build/Makefile ]]; then
  "${node_gyp[@]}" configure "${gyp_args[@]}"
fi
"${node_gyp[@]}" build "${gyp_args[@]}"
cd ..
say "done: native/build/Release/stowage.node"
