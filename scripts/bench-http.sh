#!/usr/bin/env bash
# Load figures of the hot paths against one release server on its embedded defaults:
# GET /healthz (the HTTP stack alone, the ceiling), GET /api/v1/media?limit=50,
# POST /api/v1/media/sign-upload and POST /api/v1/media/{id}/sign-download, in one run,
# each with wrk (Debian's `wrk` package) at CONNECTIONS connections for DURATION.
# Prints requests/s, p50, p99, non-2xx answers and the ratio to /healthz.
#
#   scripts/bench-http.sh [DURATION=8s] [CONNECTIONS=64]
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${1:-8s}"
conns="${2:-64}"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

cargo build --release -q -p filegate-server -p filegate-admin
bin=target/release

work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
secret="bench-secret-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export BETTER_AUTH_SECRET="$secret"
FILEGATE_DATA_DIR="$work/data" FILEGATE_LISTEN="127.0.0.1:$port" FILEGATE_S3_LISTEN=127.0.0.1:0 \
  FILEGATE_FILES_LISTEN=off FILEGATE_RATE_LIMIT_PER_SECOND=0 RUST_LOG=warn \
  "$bin/filegate-server" >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT

api="http://127.0.0.1:$port"
for _ in $(seq 1 300); do
  curl -fs "$api/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
token="$("$bin/filegate-admin" token --user bench-user --org bench-org --role owner)"

# One confirmed upload for sign-download.
signed="$(curl -fs -X POST "$api/api/v1/media/sign-upload" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' -d '{"filename":"a.txt","contentType":"text/plain"}')"
id="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$signed")"
url="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["uploadUrl"])' <<<"$signed")"
mapfile -t headers < <(python3 -c 'import json,sys
for k,v in json.load(sys.stdin)["headers"].items(): print(f"{k}: {v}")' <<<"$signed")
hargs=(); for h in "${headers[@]}"; do hargs+=(-H "$h"); done
printf 'hello' | curl -fs -X PUT "$url" "${hargs[@]}" --data-binary @- >/dev/null
curl -fs -X POST "$api/api/v1/media/$id/confirm" -H "Authorization: Bearer $token" >/dev/null

cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $token"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BODY") or ""
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %.1f %.1f\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
LUA
sed -e 's/^wrk.method = "POST"/wrk.method = "GET"/' "$work/post.lua" >"$work/get.lua"

run() { # name script url [body]
  BODY="${4:-}" wrk -t1 -c"$conns" -d"$duration" --latency -s "$2" "$3" | grep '^RESULT' |
    awk -v name="$1" '{ printf "%s %.0f %s %s %d\n", name, $2 / ($4 / 1e6), $5, $6, $3 }'
}

{
  run healthz "$work/get.lua" "$api/healthz"
  run "GET media?limit=50" "$work/get.lua" "$api/api/v1/media?limit=50"
  run "POST sign-upload" "$work/post.lua" "$api/api/v1/media/sign-upload" \
    '{"filename":"report.pdf","contentType":"application/pdf","size":1024}'
  run "POST sign-download" "$work/post.lua" "$api/api/v1/media/$id/sign-download" '{}'
} >"$work/results"

awk 'NR == 1 { base = $NF > 0 ? 0 : 0 }
  { name = $1; for (i = 2; i <= NF - 4; i++) name = name " " $i
    rps[NR] = $(NF-3); p50[NR] = $(NF-2); p99[NR] = $(NF-1); err[NR] = $NF; label[NR] = name }
  END {
    printf "| route | req/s | p50 ms | p99 ms | errors | vs /healthz |\n|---|---|---|---|---|---|\n"
    for (i = 1; i <= NR; i++)
      printf "| %s | %d | %.2f | %.2f | %d | %.0f%% |\n", label[i], rps[i], p50[i], p99[i], err[i], 100 * rps[i] / rps[1]
  }' "$work/results"
