#!/usr/bin/env bash
# scripts/bench proxy: wrk against (a) the upstream directly, (b) nginx proxy_pass adding an
# Authorization header, (c) sfkeep proxy (examples/bench_proxy, release build) — same upstream
# (an nginx returning a fixed JSON body, docs/real-clients.md#the-proxy-benchmarks-baseline-nginx), one run, rounds
# alternating A/B/C; prints the median requests/s, the ratios and p99 latency, the median of the
# per-round sfkeep/nginx ratios (each pair measured a few seconds apart, so a noisy neighbour
# hits both alike), and CPU time per request of each proxy process (user + system, from
# /proc/PID/stat: what a request costs the proxy, whatever the rest of the machine does).
#
#   BENCH_DURATION=10s BENCH_ROUNDS=5 BENCH_CONNECTIONS=50 BENCH_THREADS=1 scripts/bench proxy
#
# Both proxies get one worker (nginx worker_processes 1, a 1-thread tokio runtime).
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$(pwd)"

duration="${BENCH_DURATION:-10s}"
rounds="${BENCH_ROUNDS:-5}"
conns="${BENCH_CONNECTIONS:-50}"
threads="${BENCH_THREADS:-1}"
path='/services/data/v59.0/query?q=SELECT+Id+FROM+Account'

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
if [ "${#need[@]}" -gt 0 ]; then
    echo "bench proxy: installing ${need[*]} from Debian" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

echo "bench proxy: building examples/bench_proxy (release)" >&2
cargo build --release --locked -q -p sfkeep-proxy --example bench_proxy >&2
proxy_bin="$root/target/release/examples/bench_proxy"

work="$root/target/bench-proxy"
rm -rf "$work"
mkdir -p "$work/up/tmp" "$work/ng/tmp"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
up_port="$(free_port)"; ng_port="$(free_port)"; sf_port="$(free_port)"

temp_paths() {
    printf '    client_body_temp_path %s/tmp/body;\n    proxy_temp_path %s/tmp/proxy;\n    fastcgi_temp_path %s/tmp/fastcgi;\n    uwsgi_temp_path %s/tmp/uwsgi;\n    scgi_temp_path %s/tmp/scgi;\n' "$1" "$1" "$1" "$1" "$1"
}

cat >"$work/up/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $work/up/nginx.pid;
error_log $work/up/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
$(temp_paths "$work/up")
    server {
        listen 127.0.0.1:$up_port;
        location / {
            default_type application/json;
            return 200 '{"totalSize":0,"done":true,"records":[],"auth":"\$http_authorization"}\n';
        }
    }
}
CONF

cat >"$work/ng/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $work/ng/nginx.pid;
error_log $work/ng/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
$(temp_paths "$work/ng")
    upstream sf_upstream { server 127.0.0.1:$up_port; keepalive 64; }
    server {
        listen 127.0.0.1:$ng_port;
        location / {
            proxy_pass http://sf_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header Authorization "Bearer 00Dbench!static-token";
        }
    }
}
CONF

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

"$NGINX" -p "$work/up" -c "$work/up/nginx.conf" -e "$work/up/error.log" & pids+=($!)
"$NGINX" -p "$work/ng" -c "$work/ng/nginx.conf" -e "$work/ng/error.log" & pids+=($!)
"$proxy_bin" --listen "127.0.0.1:$sf_port" --upstream "http://127.0.0.1:$up_port" --threads 1 \
    >"$work/sfkeep.out" 2>"$work/sfkeep.err" & pids+=($!)

wait_up() {
    for _ in $(seq 1 200); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$1$path" 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "bench proxy: nothing answers on port $1" >&2
    cat "$work"/*/error.log "$work/sfkeep.err" >&2 2>/dev/null || true
    exit 1
}
wait_up "$up_port"; wait_up "$ng_port"; wait_up "$sf_port"

# Both proxies inject the token; check it before measuring.
for port in "$ng_port" "$sf_port"; do
    body="$(curl -fsS -H 'Authorization: Bearer client-sent' "http://127.0.0.1:$port$path")"
    case "$body" in
        *'"auth":"Bearer 00Dbench!static-token"'*) ;;
        *) echo "bench proxy: port $port did not inject the token: $body" >&2; exit 1 ;;
    esac
done

# wrk once; prints "RPS P99_MS REQUESTS".
run_wrk() {
    wrk -t"$threads" -c"$conns" -d"$duration" --latency "http://127.0.0.1:$1$path" | awk '
        /Requests\/sec:/ { rps = $2 }
        / requests in / { n = $1 }
        $1 == "99%" {
            v = $2
            if (v ~ /us$/) { sub(/us$/, "", v); v = v / 1000 }
            else if (v ~ /ms$/) { sub(/ms$/, "", v) }
            else if (v ~ /s$/) { sub(/s$/, "", v); v = v * 1000 }
            p99 = v
        }
        END { printf "%.0f %.3f %d\n", rps, p99, n }'
}

# CPU clock ticks (user + system) a process has used so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
tck="$(getconf CLK_TCK)"

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "bench proxy: warm-up" >&2
for port in "$up_port" "$ng_port" "$sf_port"; do
    wrk -t1 -c"$conns" -d2s "http://127.0.0.1:$port$path" >/dev/null
done

: >"$work/results"
# The process that does the work: nginx's worker (the master only supervises), sfkeep itself.
ng_worker="$(pgrep -P "${pids[1]}" | head -1)"
for r in $(seq 1 "$rounds"); do
    for target in direct:$up_port:0 nginx:$ng_port:$ng_worker sfkeep:$sf_port:${pids[2]}; do
        IFS=: read -r name port pid <<<"$target"
        before=0; [ "$pid" != 0 ] && before="$(cpu_ticks "$pid")"
        read -r rps p99 n < <(run_wrk "$port")
        cpu_us=0
        if [ "$pid" != 0 ]; then
            cpu_us="$(awk -v a="$before" -v b="$(cpu_ticks "$pid")" -v t="$tck" -v n="$n" 'BEGIN { printf "%.2f", (b - a) / t * 1e6 / n }')"
        fi
        echo "$r $name $rps $p99 $cpu_us" >>"$work/results"
        printf 'round %d  %-7s %9s req/s  p99 %s ms  cpu %s us/request\n' "$r" "$name" "$rps" "$p99" "$cpu_us" >&2
    done
done

med() { awk -v n="$1" -v c="$(($2 + 1))" '$2 == n { print $c }' "$work/results" | median; }
# Per round: sfkeep's value over (ratio) or minus (diff) nginx's, column C; the median of those.
paired() {
    awk -v c="$(($2 + 1))" -v op="$1" '
        $2 == "nginx" { ng[$1] = $c } $2 == "sfkeep" { sf[$1] = $c }
        END { for (r in sf) print (op == "ratio" ? sf[r] / ng[r] : sf[r] - ng[r]) }' "$work/results" | median
}
d_rps="$(med direct 2)"; n_rps="$(med nginx 2)"; s_rps="$(med sfkeep 2)"
d_p99="$(med direct 3)"; n_p99="$(med nginx 3)"; s_p99="$(med sfkeep 3)"
n_cpu="$(med nginx 4)"; s_cpu="$(med sfkeep 4)"
pair_rps="$(paired ratio 2)"; pair_p99="$(paired diff 3)"; pair_cpu="$(paired ratio 4)"
rss_kb="$(awk '/VmHWM/ { print $2 }' "/proc/${pids[2]}/status" 2>/dev/null || echo 0)"

echo
echo "wrk -t$threads -c$conns -d$duration --latency, $rounds rounds alternating, medians; $(nproc) cores"
printf '| target | requests/s | vs direct | p99 | p99 added | proxy CPU per request |\n|---|---:|---:|---:|---:|---:|\n'
printf '| (a) upstream directly (nginx, fixed JSON) | %s | 1.00 | %s ms | — | — |\n' "$d_rps" "$d_p99"
awk -v r="$n_rps" -v d="$d_rps" -v p="$n_p99" -v dp="$d_p99" -v c="$n_cpu" \
    'BEGIN { printf "| (b) nginx proxy_pass + Authorization (1 worker) | %s | %.2f | %s ms | %+.3f ms | %s µs |\n", r, r / d, p, p - dp, c }'
awk -v r="$s_rps" -v d="$d_rps" -v p="$s_p99" -v dp="$d_p99" -v c="$s_cpu" \
    'BEGIN { printf "| (c) sfkeep proxy (1 thread) | %s | %.2f | %s ms | %+.3f ms | %s µs |\n", r, r / d, p, p - dp, c }'
awk -v s="$s_rps" -v n="$n_rps" -v sp="$s_p99" -v np="$n_p99" \
    'BEGIN { printf "\nsfkeep / nginx throughput, ratio of medians: %.2f; sfkeep p99 minus nginx p99: %+.3f ms\n", s / n, sp - np }'
awk -v r="$pair_rps" -v p="$pair_p99" -v c="$pair_cpu" \
    'BEGIN { printf "per round, median: sfkeep / nginx throughput %.2f; p99 difference %+.3f ms; CPU per request %.2f\n", r, p, c }'
echo "sfkeep proxy peak RSS: $((rss_kb / 1024)) MB"
