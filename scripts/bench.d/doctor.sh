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
#   round trips = (doctor with latency - doctor without) / one round trip   (the critical path),
#                 from the medians and from the minimums (steadier on a loaded machine)
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
  # One request's round trip under the injected latency (a new connection each time, as
  # doctor's concurrent requests open theirs): the median of 5.
  python3 - "$INSTANCE" <<'PY'
import statistics, sys, time, urllib.error, urllib.request
t = []
for _ in range(5):
    t0 = time.perf_counter()
    try:
        urllib.request.urlopen(sys.argv[1] + "/services/oauth2/userinfo").read()
    except urllib.error.HTTPError as e:
        e.read()  # 401 without a token: an answer all the same
    t.append(time.perf_counter() - t0)
print(statistics.median(t))
PY
}

measure_state() {
  local label="$1" lat
  admin DELETE /faults
  python3 "$WORK/measure.py" "$BIN" "$RUNS" "$label|0" "${ARGS[@]}" >> "$WORK/results.jsonl"
  for lat in "$LATENCY_MS" "$((10 * LATENCY_MS))"; do
    admin DELETE /faults
    admin POST /faults "{\"path_prefix\":\"/\",\"latency_ms\":$lat}"
    python3 "$WORK/measure.py" "$BIN" "$RUNS" "$label|$lat" "${ARGS[@]}" >> "$WORK/results.jsonl"
    echo "{\"label\":\"$label|$lat\",\"rtt\":$(rtt)}" >> "$WORK/results.jsonl"
  done
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
runs, lat = sys.argv[2], int(sys.argv[3])
t, rtt, verdict, states = {}, {}, {}, []
for r in rows:
    state, l = r["label"].split("|")
    if state not in states:
        states.append(state)
    if "rtt" in r:
        rtt[state, int(l)] = r["rtt"]
    else:
        t[state, int(l)] = r
        verdict[state] = r["verdict"]
print(f"sfkeep doctor --json against the simulated org, {lat} ms before every answer (median of {runs} runs)")
for s in states:
    a, b, z = t[s, lat], t[s, 10 * lat], t[s, 0]
    one = rtt[s, lat]
    print(f"  {s} (verdict {verdict[s]}):")
    print(f"    doctor, {lat} ms latency   {a['median']*1e3:7.0f} ms   (min {a['min']*1e3:.0f} ms)")
    print(f"    doctor, no latency      {z['median']*1e3:7.0f} ms   (min {z['min']*1e3:.0f} ms): the overhead")
    print(f"    one round trip          {one*1e3:7.0f} ms")
    print(f"    ratio to one round trip {a['median']/one:7.2f}x   (overhead included)")
    # The slope between two latencies: the requests one after another, whatever the overhead.
    slope = (b["median"] - a["median"]) / (rtt[s, 10 * lat] - one)
    print(f"    round trips on the critical path {slope:5.2f}   ((doctor at {10*lat} ms - at {lat} ms) / (round trip at {10*lat} ms - at {lat} ms); issue 23: at most 4)")
b, a = json.loads(sys.argv[4]), json.loads(sys.argv[5])
print(f"  org counters over all runs: token requests {b['token_requests']} -> {a['token_requests']}, refresh_token_reuse_detected {a['refresh_token_reuse_detected']}")
PY
