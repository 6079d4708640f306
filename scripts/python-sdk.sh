#!/usr/bin/env bash
# The official MCP Python SDK, as a test tool: test/interop-python.test.ts drives Bulwark with its
# client (test/interop/python_client.py) in both protocol eras. Installed into a venv in the
# project-local folder .toolchain/python-mcp/ (gitignored), never into the machine's Python:
#
#   .toolchain/python-mcp/bin/python     CPython >= 3.10 with mcp==MCP_VERSION and its dependencies,
#                                        pinned by test/interop/python-constraints.txt
#
# A machine-wide wheelhouse (the wheels pip downloaded, keyed by SDK version, CPython version and
# platform) lets a fresh clone on the same machine, CI's, build the venv with `pip --no-index`,
# offline and in seconds. Every venv is checked the same way, wherever its wheels came from.
#
# Usage: scripts/python-sdk.sh            install when missing (quick no-op when present), print nothing
#        scripts/python-sdk.sh --print    also print the path of the venv's python on stdout
# Needs PyPI the first time; then works offline. Exits non-zero with a message when something
# cannot be installed.
set -euo pipefail

MCP_VERSION=2.3.0

root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.toolchain/python-mcp"
py="$venv/bin/python"
constraints="$root/test/interop/python-constraints.txt"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

die() {
  echo "python-sdk: error: $*" >&2
  exit 1
}

# shellcheck source=scripts/toolchain-lib.sh
. "$(dirname "$0")/toolchain-lib.sh"

# Imports the client the test uses, at the pinned version.
venv_ok() {
  [ -x "$py" ] && "$py" -c "
import importlib.metadata as m, sys
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
sys.exit(m.version('mcp') != '$MCP_VERSION')" >/dev/null 2>&1
}

if ! venv_ok; then
  base=""
  for c in python3 python3.13 python3.12 python3.11 python3.10; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys, venv; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
      base=$(command -v "$c")
      break
    fi
  done
  [ -n "$base" ] || die "CPython >= 3.10 with the venv module is needed for the MCP Python SDK (apt: python3 python3-venv)"
  tag=$("$base" -c 'import sys, sysconfig; print(f"cp{sys.version_info[0]}{sys.version_info[1]}-{sysconfig.get_platform()}")')
  wheels="$cache/python-mcp-$MCP_VERSION-$tag"

  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  run_logged "$base" -m venv "$venv" || { rm -rf "$venv"; die "$base -m venv failed (output above)"; }
  if [ -d "$wheels" ] && run_logged "$py" -m pip install --no-index --find-links "$wheels" -c "$constraints" "mcp==$MCP_VERSION"; then
    :
  else
    echo "python-sdk: installing mcp==$MCP_VERSION from PyPI into .toolchain/python-mcp..." >&2
    stage=$(mktemp -d "$root/.toolchain/.python-wheels.XXXXXX")
    run_logged "$py" -m pip download --dest "$stage" -c "$constraints" "mcp==$MCP_VERSION" ||
      { rm -rf "$stage" "$venv"; die "pip download mcp==$MCP_VERSION failed (output above)"; }
    run_logged "$py" -m pip install --no-index --find-links "$stage" -c "$constraints" "mcp==$MCP_VERSION" ||
      { rm -rf "$stage" "$venv"; die "pip install mcp==$MCP_VERSION failed (output above)"; }
    to_cache "$stage" "python-mcp-$MCP_VERSION-$tag"
    rm -rf "$stage"
  fi
  venv_ok || { rm -rf "$venv"; die "the venv was built but does not import mcp $MCP_VERSION's client"; }
fi

if [ "${1:-}" = "--print" ]; then echo "$py"; fi
