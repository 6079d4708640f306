#!/usr/bin/env bash
# Compile policies/*.rego (not tests) to policies/policy.wasm with the wasm capabilities,
# and record policies/policy.wasm.sha256 and policies/policy.source.sha256.
set -euo pipefail
# shellcheck source=lib-opa.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-opa.sh"
find_opa
cd "$REPO_ROOT"
build_wasm policies
sha256sum policies/policy.wasm | cut -d' ' -f1 > policies/policy.wasm.sha256
policy_source_hash > policies/policy.source.sha256
echo "built policies/policy.wasm ($(wc -c < policies/policy.wasm) bytes, sha256 $(cat policies/policy.wasm.sha256))"
