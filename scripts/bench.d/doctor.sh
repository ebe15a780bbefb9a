#!/usr/bin/env bash
# scripts/bench doctor [RUNS]: `sfkeep doctor --json` wall time against the simulated org with
# 100 ms injected before every answer (`POST /_fake/faults {"path_prefix":"/","latency_ms":100}`,
# docs/fake-org.md), in round trips: issue 23 asks for at most 4 (the independent requests run
# concurrently, crates/sfkeep-cli/src/diagnosis/mod.rs).
#
# Two states of the org's own profile (refresh token, JWT bearer fallback): a healthy
# integration, and one whose session just died (a logout), where doctor needs a new token
# before it can read the org. For each: the median of RUNS runs (default 7) with the latency,
# the median without it (process start, the store, the audit log: the overhead), one round
# trip (a `curl` of /services/oauth2/userinfo under the same latency), and
#   ratio       = doctor with latency / one round trip
#   round trips = (doctor with latency - doctor without) / one round trip   (the critical path)
# SFKEEP_BIN=PATH measures another build (default: a release build of this tree).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS="${1:-7}"
LATENCY_MS="${LATENCY_MS:-100}"
if [ -n "${SFKEEP_BIN:-}" ]; then
  BIN="$SFKEEP_BIN"
else
  cargo build --release -q -p sfkeep-cli
  BIN=target/release/sfkeep
fi
BIN="$(realpath "$BIN")"
WORK="$(mktemp -d)"
ORG_PID=
trap '[ -n "$ORG_PID" ] && kill "$ORG_PID" 2>/dev/null; rm -rf "$WORK"' EXIT
export HOME="$WORK/home" XDG_CONFIG_HOME="$WORK/home/.config"
mkdir -p "$HOME"
unset SFKEEP_PROFILE SFKEEP_CACHE_KEY SFKEEP_LOG RUST_LOG

"$BIN" fake-org --listen 127.0.0.1:0 --accounts 10 --state-dir "$WORK/org" > "$WORK/ready.json" &
ORG_PID=$!
for _ in $(seq 1 600); do [ -s "$WORK/ready.json" ] && break; sleep 0.1; done
field() { python3 -c "import json,sys; print(json.load(open('$WORK/ready.json'))[sys.argv[1]])" "$1"; }
PROFILE="$(field profile_file)"
ADMIN="$(field admin_url)"
INSTANCE="$(field instance_url)"
USERNAME="$(field username)"
ARGS=(--config "$PROFILE" --profile fake)
admin() { curl -fsS -o /dev/null -X "$1" -H 'content-type: application/json' "$ADMIN$2" ${3:+-d "$3"}; }

python3 - "$WORK/measure.py" <<'PY'
import sys
open(sys.argv[1], "w").write(r'''
import json, statistics, subprocess, sys, time
bin_, runs, label = sys.argv[1], int(sys.argv[2]), sys.argv[3]
args = sys.argv[4:]
times = []
for _ in range(runs):
    t0 = time.perf_counter()
    out = subprocess.run([bin_, "doctor", "--json", *args], capture_output=True, check=True).stdout
    times.append(time.perf_counter() - t0)
verdict = json.loads(out)["result"]["verdict"]
print(json.dumps({"label": label, "median": statistics.median(times), "min": min(times), "verdict": verdict}))
''')
PY

rtt() {
  # One request's round trip under the injected latency: the median of 5 curls.
  python3 - "$INSTANCE" <<'PY'
import statistics, subprocess, sys, time
t = []
for _ in range(5):
    t0 = time.perf_counter()
    subprocess.run(["curl", "-s", "-o", "/dev/null", sys.argv[1] + "/services/oauth2/userinfo"], check=True)
    t.append(time.perf_counter() - t0)
print(statistics.median(t))
PY
}

measure_state() {
  local label="$1"
  admin DELETE /faults
  python3 "$WORK/measure.py" "$BIN" "$RUNS" "$label, no latency" "${ARGS[@]}" >> "$WORK/results.jsonl"
  admin POST /faults "{\"path_prefix\":\"/\",\"latency_ms\":$LATENCY_MS}"
  python3 "$WORK/measure.py" "$BIN" "$RUNS" "$label, ${LATENCY_MS} ms latency" "${ARGS[@]}" >> "$WORK/results.jsonl"
  echo "{\"label\":\"$label\",\"rtt\":$(rtt)}" >> "$WORK/results.jsonl"
  admin DELETE /faults
}

# A working integration: a token stored and a successful call in the audit log.
"$BIN" api GET limits "${ARGS[@]}" > /dev/null
STATS_BEFORE="$(curl -fsS "$ADMIN/stats")"
measure_state "healthy"
# The session dies; doctor runs on a dead stored token (it stays dead: doctor stores nothing).
admin POST "/users/$USERNAME/logout" '{}'
measure_state "after a logout"
STATS_AFTER="$(curl -fsS "$ADMIN/stats")"

python3 - "$WORK/results.jsonl" "$RUNS" "$LATENCY_MS" "$STATS_BEFORE" "$STATS_AFTER" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
runs, lat = sys.argv[2], sys.argv[3]
print(f"sfkeep doctor --json against the simulated org, {lat} ms before every answer (median of {runs} runs)")
by = {}
for r in rows:
    by.setdefault(r["label"].split(",")[0], []).append(r)
for state, rs in by.items():
    base = next(r for r in rs if r["label"].endswith("no latency"))
    lat_r = next(r for r in rs if r["label"].endswith("latency") and not r["label"].endswith("no latency"))
    rtt = next(r["rtt"] for r in rs if "rtt" in r)
    print(f"  {state} (verdict {lat_r['verdict']}):")
    print(f"    doctor, {lat} ms latency   {lat_r['median']*1e3:7.0f} ms   (min {lat_r['min']*1e3:.0f} ms)")
    print(f"    doctor, no latency      {base['median']*1e3:7.0f} ms   (the overhead)")
    print(f"    one round trip          {rtt*1e3:7.0f} ms")
    print(f"    ratio to one round trip {lat_r['median']/rtt:7.2f}x")
    print(f"    round trips on the critical path ((with - without) / one) {(lat_r['median']-base['median'])/rtt:5.2f}  (issue 23: at most 4)")
b, a = json.loads(sys.argv[4]), json.loads(sys.argv[5])
print(f"  org counters over all runs: token requests {b['token_requests']} -> {a['token_requests']}, refresh_token_reuse_detected {a['refresh_token_reuse_detected']}")
PY
