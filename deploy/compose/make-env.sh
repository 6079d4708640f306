#!/usr/bin/env bash
# Writes .bulwark/compose.env (git-ignored) with random passwords for compose.yaml, once:
#   deploy/compose/make-env.sh && docker compose --env-file .bulwark/compose.env up -d
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.bulwark/compose.env
if [ -e "$out" ]; then
  echo "$out exists; keeping it" >&2
  exit 0
fi
mkdir -p .bulwark
umask 077
rand() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
{
  echo "POSTGRES_PASSWORD=$(rand)"
  echo "BULWARK_APP_PASSWORD=$(rand)"
  echo "BULWARK_OPERATOR_PASSWORD=$(rand)"
  echo "BULWARK_READER_PASSWORD=$(rand)"
  echo "REDIS_PASSWORD=$(rand)"
  echo "GRAFANA_ADMIN_PASSWORD=$(rand)"
} >"$out"
echo "wrote $out (mode 0600)"
