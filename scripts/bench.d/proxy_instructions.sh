#!/usr/bin/env bash
# User-space instructions per forwarded request, for sfkeep proxy (examples/bench_proxy) and for
# nginx proxy_pass, counted by valgrind's callgrind: the same in a busy or an idle machine, unlike
# requests/s. Each proxy forwards to an nginx returning fixed JSON (as in proxy.sh); a Python
# client sends 2,000 warm-up GETs, the counters are zeroed, then N GETs over C keep-alive
# connections, and the counters are dumped.
#
#   scripts/bench.d/proxy_instructions.sh [N=20000] [C=50]
#   BENCH_PROXY_BIN=path/to/bench_proxy ...   # measure another build of bench_proxy
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$(pwd)"
n="${1:-20000}"; c="${2:-50}"
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
bin="${BENCH_PROXY_BIN:-}"
if [ -z "$bin" ]; then
    cargo build --release --locked -q -p sfkeep-proxy --example bench_proxy >&2
    bin="$root/target/release/examples/bench_proxy"
fi

work="$root/target/bench-proxy-instructions"
rm -rf "$work"; mkdir -p "$work/up/tmp" "$work/ng/tmp"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
up="$(free_port)"; px="$(free_port)"
temps() { printf 'client_body_temp_path %s/tmp/b; proxy_temp_path %s/tmp/p; fastcgi_temp_path %s/tmp/f; uwsgi_temp_path %s/tmp/u; scgi_temp_path %s/tmp/s;\n' "$1" "$1" "$1" "$1" "$1"; }
cat >"$work/up/nginx.conf" <<CONF
daemon off; worker_processes 1; pid $work/up/nginx.pid; error_log $work/up/error.log warn;
events { worker_connections 4096; }
http { access_log off; $(temps "$work/up")
    server { listen 127.0.0.1:$up; location / { default_type application/json;
        return 200 '{"totalSize":0,"done":true,"records":[],"auth":"\$http_authorization"}\n'; } } }
CONF
# One process (no master), so callgrind sees the worker.
cat >"$work/ng/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $work/ng/nginx.pid; error_log $work/ng/error.log warn;
events { worker_connections 4096; }
http { access_log off; $(temps "$work/ng")
    upstream sf_upstream { server 127.0.0.1:$up; keepalive 64; }
    server { listen 127.0.0.1:$px; location / {
        proxy_pass http://sf_upstream; proxy_http_version 1.1; proxy_set_header Connection "";
        proxy_set_header Host \$http_host; proxy_set_header Authorization "Bearer 00Dbench!static-token"; } } }
CONF
cat >"$work/load.py" <<'PY'
import asyncio, sys
port, n, c = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
req = (f"GET /services/data/v59.0/query?q=SELECT+Id+FROM+Account HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
       "Authorization: Bearer client-sent\r\nAccept: */*\r\n\r\n").encode()
left = n
async def worker():
    global left
    r, w = await asyncio.open_connection("127.0.0.1", port)
    while left > 0:
        left -= 1
        w.write(req)
        head = await r.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        length = next((int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")), 0)
        await r.readexactly(length)
    w.close()
async def main():
    await asyncio.gather(*(worker() for _ in range(c)))
asyncio.run(main())
PY

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
"$NGINX" -p "$work/up" -c "$work/up/nginx.conf" -e "$work/up/error.log" & pids+=($!)

# measure NAME COMMAND...: prints "NAME  INSTRUCTIONS/request".
measure() {
    local name="$1"; shift
    valgrind --tool=callgrind --callgrind-out-file="$work/$name.%p" "$@" >"$work/$name.out" 2>"$work/$name.err" &
    local vg=$!; pids+=("$vg")
    for _ in $(seq 1 300); do
        curl -fsS -o /dev/null "http://127.0.0.1:$px/services/data/v59.0/limits" 2>/dev/null && break
        sleep 0.2
    done
    python3 "$work/load.py" "$px" 2000 "$c"
    callgrind_control -z "$vg" >/dev/null 2>&1
    python3 "$work/load.py" "$px" "$n" "$c"
    callgrind_control -d "$vg" >/dev/null 2>&1
    kill "$vg"; wait "$vg" 2>/dev/null || true
    local ir
    ir="$(awk '/^(summary|totals):/ { print $2; exit }' "$work/$name.$vg.1")"
    printf '%-28s %7d instructions/request (%d requests, %d connections)\n' "$name" $((ir / n)) "$n" "$c"
}
measure "sfkeep proxy (bench_proxy)" "$bin" --listen "127.0.0.1:$px" --upstream "http://127.0.0.1:$up" --threads 1
measure "nginx proxy_pass" "$NGINX" -p "$work/ng" -c "$work/ng/nginx.conf" -e "$work/ng/error.log"
