#!/usr/bin/env bash
# scripts/bench token-cli [RUNS]: `sfkeep token` against `sfkeep status`, both with a fresh
# cached token (file store, the simulated org's profile), whole processes. Uses hyperfine when
# it is installed (`-N`, no shell; warm-up 5), else (or with NO_HYPERFINE=1) times RUNS runs of
# each in a Python loop, alternating.
# Prints the mean and median of each and the ratio token / status.
# SFKEEP_BIN=PATH measures another build (default: a release build of this tree);
# BEFORE_BIN=PATH also measures that build against the same org and token store, alternating,
# and prints after / before for each command.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS="${1:-200}"
if [ -n "${SFKEEP_BIN:-}" ]; then
  BIN="$SFKEEP_BIN"
else
  cargo build --release -q -p sfkeep-cli
  BIN=target/release/sfkeep
fi
BIN="$(realpath "$BIN")"
BEFORE="${BEFORE_BIN:+$(realpath "$BEFORE_BIN")}"
WORK="$(mktemp -d)"
trap 'kill "$ORG_PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
export HOME="$WORK/home" XDG_CONFIG_HOME="$WORK/home/.config"
mkdir -p "$HOME"
unset SFKEEP_PROFILE SFKEEP_CACHE_KEY SFKEEP_LOG RUST_LOG

"$BIN" fake-org --listen 127.0.0.1:0 --accounts 10 --state-dir "$WORK/org" > "$WORK/ready.json" &
ORG_PID=$!
for _ in $(seq 1 600); do [ -s "$WORK/ready.json" ] && break; sleep 0.1; done
PROFILE="$(python3 -c "import json; print(json.load(open('$WORK/ready.json'))['profile_file'])")"
ARGS="--config $PROFILE --profile fake"
# One token request, so that every measured run finds a fresh token in the store.
"$BIN" token $ARGS > /dev/null
STATS_BEFORE="$(curl -fsS "$(python3 -c "import json; print(json.load(open('$WORK/ready.json'))['admin_url'])")/stats")"

declare -a NAMES=("after token" "after status")
declare -a CMDS=("$BIN token $ARGS" "$BIN status $ARGS")
if [ -n "$BEFORE" ]; then
  NAMES+=("before token" "before status")
  CMDS+=("$BEFORE token $ARGS" "$BEFORE status $ARGS")
fi
for c in "${CMDS[@]}"; do $c > /dev/null; done

if [ -z "${NO_HYPERFINE:-}" ] && command -v hyperfine > /dev/null; then
  TOOL="hyperfine $(hyperfine --version | awk '{print $2}'), -N, warm-up 5, $RUNS runs"
  HF=(hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$WORK/times.json" --style none)
  for i in "${!CMDS[@]}"; do HF+=(-n "${NAMES[$i]}" "${CMDS[$i]}"); done
  "${HF[@]}" > /dev/null
else
  TOOL="a Python loop, $RUNS runs of each, alternating"
  python3 - "$RUNS" "$WORK/times.json" "${NAMES[@]}" -- "${CMDS[@]}" <<'PY'
import json, subprocess, sys, time
runs, out = int(sys.argv[1]), sys.argv[2]
rest = sys.argv[3:]; sep = rest.index("--")
names, cmds = rest[:sep], rest[sep + 1:]
times = [[] for _ in cmds]
for _ in range(runs):
    for i, c in enumerate(cmds):
        t0 = time.perf_counter()
        subprocess.run(c.split(), stdout=subprocess.DEVNULL, check=True)
        times[i].append(time.perf_counter() - t0)
json.dump({"results": [{"command": n, "times": t} for n, t in zip(names, times)]}, open(out, "w"))
PY
fi
STATS_AFTER="$(curl -fsS "$(python3 -c "import json; print(json.load(open('$WORK/ready.json'))['admin_url'])")/stats")"

python3 - "$WORK/times.json" "$TOOL" "$STATS_BEFORE" "$STATS_AFTER" <<'PY'
import json, statistics, sys
res = {r["command"]: r["times"] for r in json.load(open(sys.argv[1]))["results"]}
print(f"sfkeep token / sfkeep status with a fresh cached token ({sys.argv[2]})")
def line(name):
    t = res[name]
    print(f"  {name:<14} mean {statistics.mean(t)*1e3:7.2f} ms   median {statistics.median(t)*1e3:7.2f} ms   min {min(t)*1e3:6.2f} ms")
for n in res:
    line(n)
med = {n: statistics.median(t) for n, t in res.items()}
for side in ("after", "before"):
    if f"{side} token" in med:
        print(f"  {side}: token / status (medians)      {med[side + ' token'] / med[side + ' status']:6.2f}x")
if "before token" in med:
    for c in ("token", "status"):
        print(f"  {c}: after / before (medians)      {med['after ' + c] / med['before ' + c]:6.2f}x")
b, a = json.loads(sys.argv[3]), json.loads(sys.argv[4])
moved = {k: (b[k], a[k]) for k in ("token_requests", "api_requests", "soap_logins") if b[k] != a[k]}
print("  org requests during the runs: " + ("none" if not moved else str(moved)))
PY
