#!/usr/bin/env bash
# scripts/bench fleet: token requests per session death, and token() latency during the refresh
# storm, for a fleet sharing one token through Redis (sfkeep) against the same fleet where each
# process refreshes for itself (memory store). Starts its own redis-server and simulated org.
#   FLEET_BENCH_PROCS (8)  FLEET_BENCH_TASKS (100)  FLEET_BENCH_DEATHS (20)  FLEET_BENCH_RELEASE=1
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v redis-server >/dev/null || {
  echo "scripts/bench fleet needs redis-server (apt-get install redis-server)" >&2
  exit 1
}
profile=()
if [ "${FLEET_BENCH_RELEASE:-}" = 1 ]; then profile=(--release); fi
out="$(cargo test "${profile[@]}" -p sfkeep --features redis --test fleet -- \
  --ignored --exact fleet_bench --nocapture --test-threads=1 2>&1)" || { echo "$out" >&2; exit 1; }
printf '%s\n' "$out" | sed -n 's/^test fleet_bench \.\.\. //; /^fleet: /,/max, after the 401/p'
