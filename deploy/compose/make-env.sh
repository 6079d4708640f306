#!/usr/bin/env bash
# Writes .bulwark/compose.env (git-ignored) with random passwords for compose.yaml, once:
#   deploy/compose/make-env.sh && docker compose --env-file .bulwark/compose.env up -d
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.bulwark/compose.env
umask 077
rand() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
if [ -e "$out" ]; then
  # Files written before the shared sealing key existed get one; nothing else changes.
  if ! grep -q '^BULWARK_REQUEST_STATE_KEY=' "$out"; then
    echo "BULWARK_REQUEST_STATE_KEY=$(rand)$(rand)" >>"$out"
    echo "added BULWARK_REQUEST_STATE_KEY to $out" >&2
  fi
  echo "$out exists; keeping it" >&2
  exit 0
fi
mkdir -p .bulwark
{
  echo "POSTGRES_PASSWORD=$(rand)"
  echo "BULWARK_APP_PASSWORD=$(rand)"
  echo "BULWARK_OPERATOR_PASSWORD=$(rand)"
  echo "BULWARK_READER_PASSWORD=$(rand)"
  echo "REDIS_PASSWORD=$(rand)"
  echo "GRAFANA_ADMIN_PASSWORD=$(rand)"
  echo "BULWARK_REQUEST_STATE_KEY=$(rand)$(rand)"
} >"$out"
echo "wrote $out (mode 0600)"
