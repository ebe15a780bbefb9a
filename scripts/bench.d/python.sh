#!/usr/bin/env bash
# The Python wheel: sfkeep.requests.session vs a plain requests.Session with a fixed token on
# the same simulated org, and token() vs an attribute read. Builds a release wheel.
#   scripts/bench python        (ROUNDS=5 CALLS=2000 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$(pwd)"
build_py="$(./scripts/python-venv)"
"$build_py" -m pip install --quiet --disable-pip-version-check "maturin==1.16.0"
rm -rf target/wheels-bench
"$build_py" -m maturin build --quiet --release -m crates/sfkeep-py/Cargo.toml --out target/wheels-bench \
    --interpreter "$build_py" --compatibility linux >&2
venv=target/python-bench-venv
python3 -m venv --clear "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check target/wheels-bench/sfkeep-*.whl
cargo build --release -p sfkeep-cli --locked >&2
state="$(mktemp -d)"
target/release/sfkeep fake-org --accounts 10 --state-dir "$state" > "$state/ready" &
org=$!
trap 'kill $org 2>/dev/null; rm -rf "$state"' EXIT
for _ in $(seq 1 600); do [ -s "$state/ready" ] && break; sleep 0.1; done
field() { "$venv/bin/python" -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$state/ready" "$1"; }
SF_LOGIN_URL="$(field login_url)" SF_CLIENT_ID="$(field client_id)" SF_CLIENT_SECRET="$(field client_secret)" \
SF_REFRESH_TOKEN="$(field refresh_token)" "$venv/bin/python" "$root/crates/sfkeep-py/bench/bench_python.py"
