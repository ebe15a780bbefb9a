#!/usr/bin/env bash
# scripts/bench sync [ACCOUNTS] [RUNS]: sfkeep sync vs simple-salesforce query_all + sqlite3
# executemany, on the same simulated org, alternating runs; prints medians and the ratio.
# Then incremental runs: CHANGES (default 1000) Accounts touched, then one `sfkeep sync` into
# the loaded database, RUNS times, with the default look-back and with `--look-back 0s`
# (the cost of the look-back window). SFKEEP_BIN=PATH benchmarks another build of sfkeep
# (an older one without --look-back measures the default only); ORG_BIN=PATH runs the
# simulated org from another build, so two builds of the client can face the same org.
set -euo pipefail
cd "$(dirname "$0")/../.."
ACCOUNTS="${1:-100000}"
RUNS="${2:-3}"
CHANGES="${CHANGES:-1000}"
if [ -n "${SFKEEP_BIN:-}" ]; then
  BIN="$SFKEEP_BIN"
else
  cargo build --release -q -p sfkeep-cli
  BIN=target/release/sfkeep
fi
PY="${SFKEEP_PYTHON:-$(./scripts/python-venv)}"
WORK="$(mktemp -d)"
trap 'kill "$ORG_PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT

"${ORG_BIN:-$BIN}" fake-org --accounts "$ACCOUNTS" --state-dir "$WORK/org" > "$WORK/ready.json" &
ORG_PID=$!
for _ in $(seq 1 600); do [ -s "$WORK/ready.json" ] && break; sleep 0.1; done
field() { python3 -c "import json,sys; print(json.load(open('$WORK/ready.json'))['$1'])"; }
PROFILE="$(field profile_file)"

sfkeep_run() {
  rm -f "$WORK/sfkeep.db"*
  local t0 t1
  t0=$(date +%s.%N)
  "$BIN" sync accounts --to "sqlite:$WORK/sfkeep.db" --config "$PROFILE" --profile fake >/dev/null 2>&1
  t1=$(date +%s.%N)
  python3 -c "print($t1 - $t0)"
}
baseline_run() {
  rm -f "$WORK/base.db"
  SF_URL="$(field instance_url)" SF_USERNAME="$(field username)" SF_PASSWORD="$(field password)" \
  SF_SECURITY_TOKEN="$(field security_token)" BENCH_DB="$WORK/base.db" \
    "$PY" scripts/bench.d/sync_baseline.py | python3 -c "import json,sys; print(json.load(sys.stdin)['seconds'])"
}

S=(); B=()
for i in $(seq 1 "$RUNS"); do
  S+=("$(sfkeep_run)")
  B+=("$(baseline_run)")
done
python3 - "$ACCOUNTS" "${S[*]}" "${B[*]}" <<'PY'
import statistics, sys
n = int(sys.argv[1]); s = [float(x) for x in sys.argv[2].split()]; b = [float(x) for x in sys.argv[3].split()]
ms, mb = statistics.median(s), statistics.median(b)
print(f"sync of {n} Accounts into SQLite, median of {len(s)} alternating runs")
print(f"  sfkeep sync                                  {ms:8.2f} s   {n/ms:10.0f} records/s   runs {' '.join(f'{x:.2f}' for x in s)}")
print(f"  simple-salesforce query_all + executemany    {mb:8.2f} s   {n/mb:10.0f} records/s   runs {' '.join(f'{x:.2f}' for x in b)}")
print(f"  ratio (baseline time / sfkeep time)          {mb/ms:8.2f}x")
PY

# Incremental runs into the database the last full run left.
ADMIN="$(field admin_url)"
timed() {
  local t0 t1
  t0=$(date +%s.%N)
  "$BIN" sync accounts --to "sqlite:$WORK/sfkeep.db" --config "$PROFILE" --profile fake "$@" --json > "$WORK/inc.json" 2>/dev/null
  t1=$(date +%s.%N)
  python3 -c "import json; s=json.load(open('$WORK/inc.json')); s=s.get('result', s); print(f'{$t1 - $t0:.3f}', s['fetched'])"
}
touch_some() {
  curl -fsS -X POST "$ADMIN/records/Account/touch" -H 'Content-Type: application/json' \
    -d "{\"count\": $CHANGES}" > /dev/null
}
LOOK_BACK_FLAG=0
"$BIN" sync --help 2>/dev/null | grep -q -- --look-back && LOOK_BACK_FLAG=1
I=(); Z=()
for i in $(seq 1 "$RUNS"); do
  touch_some; I+=("$(timed)")
  if [ "$LOOK_BACK_FLAG" = 1 ]; then touch_some; Z+=("$(timed --look-back 0s)"); fi
done
python3 - "$CHANGES" "${I[*]}" "${Z[*]}" <<'PY'
import statistics, sys
n = int(sys.argv[1])
def runs(arg):
    v = arg.split()
    return [(float(v[i]), int(v[i + 1])) for i in range(0, len(v), 2)]
i, z = runs(sys.argv[2]), runs(sys.argv[3])
print(f"incremental sync after {n} Accounts changed, median of {len(i)} runs (seconds, records fetched)")
mi = statistics.median(t for t, _ in i)
print(f"  default look-back                            {mi:8.3f} s   runs {' '.join(f'{t:.3f}/{f}' for t, f in i)}")
if z:
    mz = statistics.median(t for t, _ in z)
    print(f"  --look-back 0s                               {mz:8.3f} s   runs {' '.join(f'{t:.3f}/{f}' for t, f in z)}")
    print(f"  look-back cost (default / none)              {mi/mz:8.2f}x")
PY
