#!/usr/bin/env bash
# scripts/bench sync [ACCOUNTS] [RUNS]: sfkeep sync vs simple-salesforce query_all + sqlite3
# executemany, on the same simulated org, alternating runs; prints medians and the ratio.
# Also the floor (scripts/bench.d/sync_floor.py: the same Bulk 2.0 job, its state read every
# 10 ms, its result pages fetched and dropped by bare Python, standard library only), timed as
# a whole process like sfkeep, and sfkeep's ratio to it; peak RSS of sfkeep and the floor
# (GNU time, when /usr/bin/time is there).
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

# Runs "$@" (stdout to $WORK/out, stderr to $WORK/err) and prints its wall time in seconds and
# its peak RSS in kB ("-" without GNU time).
TIME_BIN=""
[ -x /usr/bin/time ] && /usr/bin/time -f %M true 2>/dev/null && TIME_BIN=/usr/bin/time
measured() {
  local t0 t1 rss=-
  t0=$(date +%s.%N)
  if [ -n "$TIME_BIN" ]; then
    "$TIME_BIN" -f %M -o "$WORK/rss" "$@" > "$WORK/out" 2> "$WORK/err"
    rss=$(tail -1 "$WORK/rss")
  else
    "$@" > "$WORK/out" 2> "$WORK/err"
  fi
  t1=$(date +%s.%N)
  echo "$(python3 -c "print($t1 - $t0)") $rss"
}
sfkeep_run() {
  rm -f "$WORK/sfkeep.db"*
  measured "$BIN" sync accounts --to "sqlite:$WORK/sfkeep.db" --config "$PROFILE" --profile fake
}
floor_run() {
  local m
  m=$(SF_URL="$(field login_url)" SF_CLIENT_ID="$(field client_id)" SF_CLIENT_SECRET="$(field client_secret)" \
    SF_USERNAME="$(field username)" SF_PASSWORD="$(field password)" SF_SECURITY_TOKEN="$(field security_token)" \
    measured python3 -S scripts/bench.d/sync_floor.py)
  echo "$m $(python3 -c "import json; print(json.load(open('$WORK/out'))['seconds'])")"
}
baseline_run() {
  rm -f "$WORK/base.db"
  SF_URL="$(field instance_url)" SF_USERNAME="$(field username)" SF_PASSWORD="$(field password)" \
  SF_SECURITY_TOKEN="$(field security_token)" BENCH_DB="$WORK/base.db" \
    "$PY" scripts/bench.d/sync_baseline.py | python3 -c "import json,sys; print(json.load(sys.stdin)['seconds'])"
}

S=(); F=(); B=()
for i in $(seq 1 "$RUNS"); do
  S+=("$(sfkeep_run)")
  F+=("$(floor_run)")
  B+=("$(baseline_run)")
done
python3 - "$ACCOUNTS" "${S[*]}" "${F[*]}" "${B[*]}" <<'PY'
import statistics, sys
n = int(sys.argv[1])
def cols(arg, k):
    v = arg.split()
    return [v[i:i + k] for i in range(0, len(v), k)]
s = cols(sys.argv[2], 2); f = cols(sys.argv[3], 3); b = [float(x) for x in sys.argv[4].split()]
st = [float(x[0]) for x in s]; ft = [float(x[0]) for x in f]; fj = [float(x[2]) for x in f]
ms, mf, mj, mb = statistics.median(st), statistics.median(ft), statistics.median(fj), statistics.median(b)
def rss(rows):
    kb = [int(x[1]) for x in rows if x[1] != "-"]
    return f"peak RSS {max(kb) / 1024:6.1f} MB" if kb else "peak RSS -"
print(f"sync of {n} Accounts into SQLite, median of {len(st)} alternating runs")
print(f"  sfkeep sync (whole process)                  {ms:8.2f} s   {n/ms:10.0f} records/s   {rss(s)}   runs {' '.join(f'{x:.2f}' for x in st)}")
print(f"  floor: Bulk 2.0 job, pages dropped (process) {mf:8.2f} s   {n/mf:10.0f} records/s   {rss(f)}   runs {' '.join(f'{x:.2f}' for x in ft)}")
print(f"  floor: token request to last page            {mj:8.2f} s   runs {' '.join(f'{x:.2f}' for x in fj)}")
print(f"  simple-salesforce query_all + executemany    {mb:8.2f} s   {n/mb:10.0f} records/s   runs {' '.join(f'{x:.2f}' for x in b)}")
print(f"  ratio (baseline time / sfkeep time)          {mb/ms:8.2f}x")
print(f"  ratio (sfkeep time / floor time, processes)  {ms/mf:8.2f}x   (target <= 2x, issue 19)")
print(f"  ratio (sfkeep process / floor's job time)    {ms/mj:8.2f}x   (the floor without Python's start-up)")
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
