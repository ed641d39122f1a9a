#!/usr/bin/env bash
# Load figures of the hot paths against one release server per database, in one run:
# GET /healthz (the HTTP stack alone, the ceiling), GET /api/v1/media (a page of 50 rows
# and a page of 1), POST /api/v1/media/{id}/sign-download (50 ids in turn), the page of
# 50 again while 4 other connections sign uploads, POST /api/v1/media/sign-upload,
# and in managed mode POST /storage/v1/presign/{bucket}/{path} (a new path per request)
# and POST /storage/v1/confirm/{bucket}/{path} (of an object confirmed already: the
# lookup, the access checks and the answer, not the storage HEAD of a first confirm).
# Each with wrk (Debian's `wrk` package), one thread, CONNECTIONS connections, DURATION.
# Prints one markdown table: requests/s, p50, p99, failed requests (4xx/5xx answers,
# socket errors), the ratio to the same server's /healthz and, for Postgres, to SQLite's figure.
#
#   scripts/bench-http.sh [DURATION=6s] [CONNECTIONS=64] [DATABASES=sqlite]
#
# DATABASES: `sqlite`, `postgres` or `both`. Postgres needs FILEGATE_BENCH_DATABASE_URL
# (else FILEGATE_TEST_DATABASE_URL), e.g. postgres://postgres@127.0.0.1:5432/test: the
# server runs in a fresh schema of it, dropped at the end (needs psql).
#
# FILEGATE_BENCH_BIN: a folder holding filegate-server and filegate-admin to measure
# instead of building this checkout (say, a copy of an earlier build, for a baseline
# measured in the same session).
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${1:-6s}"
conns="${2:-64}"
databases="${3:-sqlite}"
case "$databases" in
  sqlite) dbs=(sqlite) ;;
  postgres) dbs=(postgres) ;;
  both) dbs=(sqlite postgres) ;;
  *) echo "DATABASES is sqlite, postgres or both" >&2; exit 2 ;;
esac
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
pg_url="${FILEGATE_BENCH_DATABASE_URL:-${FILEGATE_TEST_DATABASE_URL:-}}"
if [[ " ${dbs[*]} " == *" postgres "* ]]; then
  [[ -n "$pg_url" ]] || { echo "set FILEGATE_BENCH_DATABASE_URL for Postgres" >&2; exit 1; }
  command -v psql >/dev/null || { echo "psql is needed for Postgres" >&2; exit 1; }
fi

bin="${FILEGATE_BENCH_BIN:-}"
if [[ -z "$bin" ]]; then
  cargo build --release -q -p filegate-server -p filegate-admin
  bin=target/release
fi

work="$(mktemp -d)"
server=""
schema=""
cleanup() {
  [[ -n "$server" ]] && { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; }
  [[ -n "$schema" ]] && psql -q "$pg_url" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

secret="bench-secret-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export BETTER_AUTH_SECRET="$secret"
token="$("$bin/filegate-admin" token --user bench-user --org bench-org --role owner)"
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# start DB: one server on fresh data (and, for Postgres, a fresh schema); sets $api.
start() {
  local db_env=()
  if [[ "$1" == postgres ]]; then
    schema="bench_$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    psql -q "$pg_url" -c "CREATE SCHEMA $schema" >/dev/null
    local sep='?'; [[ "$pg_url" == *'?'* ]] && sep='&'
    db_env=(FILEGATE_DATABASE_URL="$pg_url${sep}options=-csearch_path%3D$schema")
  fi
  rm -rf "$work/data"
  env "${db_env[@]}" FILEGATE_DATA_DIR="$work/data" FILEGATE_LISTEN=127.0.0.1:0 \
    FILEGATE_S3_LISTEN=127.0.0.1:0 FILEGATE_MANAGED=true FILEGATE_FILES_LISTEN=off \
    FILEGATE_RATE_LIMIT_PER_SECOND=0 FILEGATE_LOG_FORMAT=json RUST_LOG=warn,filegate_server::app=info \
    "$bin/filegate-server" >"$work/server.log" 2>&1 &
  server=$!
  api=""
  for _ in $(seq 1 300); do
    api="$(grep -o '"api":"[^"]*"' "$work/server.log" 2>/dev/null | head -1 | cut -d'"' -f4 || true)"
    [[ -n "$api" ]] && curl -fs "http://$api/healthz" >/dev/null 2>&1 && break
    api=""
    sleep 0.1
  done
  [[ -n "$api" ]] || { echo "the server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }
  api="http://$api"
}

stop() {
  kill "$server"; wait "$server" 2>/dev/null || true; server=""
  if [[ -n "$schema" ]]; then
    psql -q "$pg_url" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null; schema=""
  fi
}

auth=(-H "Authorization: Bearer $token" -H 'Content-Type: application/json')

# put SIGNED-JSON: the PUT a presign asks for, with exactly its headers.
put() {
  local url; url="$(json '["uploadUrl"]' <<<"$1")"
  local hargs=()
  while IFS= read -r h; do hargs+=(-H "$h"); done < <(python3 -c 'import json,sys
for k,v in json.load(sys.stdin)["headers"].items(): print(f"{k}: {v}")' <<<"$1")
  printf 'hello' | curl -fs -X PUT "$url" "${hargs[@]}" --data-binary @- >/dev/null
}

# seed: 50 confirmed uploads (a full page for the listing; downloads are signed for each
# of them in turn), a managed bucket and one confirmed object in it.
seed() {
  media_ids=()
  for i in $(seq 1 50); do
    local signed id
    signed="$(curl -fs -X POST "$api/api/v1/media/sign-upload" "${auth[@]}" \
      -d "{\"filename\":\"f$i.txt\",\"contentType\":\"text/plain\",\"size\":5}")"
    id="$(json '["id"]' <<<"$signed")"
    put "$signed"
    curl -fs -X POST "$api/api/v1/media/$id/confirm" "${auth[@]}" -d '' >/dev/null
    media_ids+=("$id")
  done
  curl -fs -X POST "$api/storage/v1/bucket" "${auth[@]}" -d '{"name":"bench"}' >/dev/null
  local signed
  signed="$(curl -fs -X POST "$api/storage/v1/presign/bench/confirmed.txt" "${auth[@]}" \
    -d '{"contentType":"text/plain","size":5}')"
  put "$signed"
  curl -fs -X POST "$api/storage/v1/confirm/bench/confirmed.txt" "${auth[@]}" -d '' >/dev/null
}

# One script for every route: METHOD, BODY and, with UNIQUE_PREFIX, a new path per
# request, or with PATHS (separated by spaces), each of those paths in turn.
cat >"$work/bench.lua" <<LUA
wrk.method = os.getenv("METHOD")
wrk.headers["Authorization"] = "Bearer $token"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BODY") or ""
local prefix = os.getenv("UNIQUE_PREFIX")
local paths = {}
for p in string.gmatch(os.getenv("PATHS") or "", "%S+") do paths[#paths + 1] = p end
local counter = 0
if prefix and prefix ~= "" then
  request = function()
    counter = counter + 1
    return wrk.format(nil, prefix .. counter .. ".bin")
  end
elseif #paths > 0 then
  request = function()
    counter = counter % #paths + 1
    return wrk.format(nil, paths[counter])
  end
end
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format("RESULT %d %d %d %.2f %.2f\n", summary.requests,
    errors.status + errors.connect + errors.read + errors.write + errors.timeout,
    summary.duration, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
LUA

# run DB ROUTE METHOD URL [BODY] [UNIQUE_PREFIX] [PATHS]
run() {
  METHOD="$3" BODY="${5:-}" UNIQUE_PREFIX="${6:-}" PATHS="${7:-}" \
    wrk -t1 -c"$conns" -d"$duration" --latency -s "$work/bench.lua" "$4" | grep '^RESULT' |
    awk -v db="$1" -v route="$2" \
      '{ printf "%s\t%s\t%.0f\t%s\t%s\t%d\n", db, route, $2 / ($4 / 1e6), $5, $6, $3 }'
}

for db in "${dbs[@]}"; do
  start "$db"
  seed
  {
    run "$db" '`GET /healthz`' GET "$api/healthz"
    # Reads first: a read measured just after a flood of writes measures the database's
    # own catching up (autovacuum, checkpoints of 100 000 new rows) as much as the route.
    run "$db" '`GET /api/v1/media?limit=50` (50 rows)' GET "$api/api/v1/media?limit=50"
    run "$db" '`GET /api/v1/media?limit=1`' GET "$api/api/v1/media?limit=1"
    run "$db" '`POST /api/v1/media/{id}/sign-download` (50 ids)' POST \
      "$api/api/v1/media/${media_ids[0]}/sign-download" '{}' '' \
      "$(printf '/api/v1/media/%s/sign-download ' "${media_ids[@]}")"
    run "$db" '`POST /storage/v1/confirm/…` (confirmed)' POST \
      "$api/storage/v1/confirm/bench/confirmed.txt" ''
    # The same page while 4 other connections sign uploads: every commit moves the media
    # store's change token, so kept pages are mostly missed and re-read.
    METHOD=POST BODY='{"filename":"w.pdf","contentType":"application/pdf","size":1024}' \
      wrk -t1 -c4 -d"$duration" -s "$work/bench.lua" "$api/api/v1/media/sign-upload" >/dev/null &
    writer=$!
    run "$db" '`GET /api/v1/media?limit=50` (50 rows, 4 connections signing uploads beside)' \
      GET "$api/api/v1/media?limit=50"
    wait "$writer"
    run "$db" '`POST /api/v1/media/sign-upload`' POST "$api/api/v1/media/sign-upload" \
      '{"filename":"report.pdf","contentType":"application/pdf","size":1024}'
    run "$db" '`POST /storage/v1/presign/…` (new path)' POST "$api/storage/v1/presign/bench/x" \
      '{"contentType":"text/plain","size":5}' "/storage/v1/presign/bench/p/"
  } >>"$work/results"
  stop
done

awk -F'\t' '
  { db[NR] = $1; route[NR] = $2; rps[NR] = $3; p50[NR] = $4; p99[NR] = $5; err[NR] = $6
    if (route[NR] ~ /healthz/) base[$1] = $3
    if ($1 == "sqlite") sqlite[$2] = $3 }
  END {
    print "| database | route | req/s | p50 ms | p99 ms | failed | vs `/healthz` | vs SQLite |"
    print "|---|---|---|---|---|---|---|---|"
    for (i = 1; i <= NR; i++) {
      vs = (db[i] != "sqlite" && sqlite[route[i]] > 0) ? sprintf("%.0f %%", 100 * rps[i] / sqlite[route[i]]) : "–"
      printf "| %s | %s | %d | %.2f | %.2f | %d | %.0f %% | %s |\n", db[i], route[i], rps[i],
        p50[i], p99[i], err[i], 100 * rps[i] / base[db[i]], vs
    }
  }' "$work/results"
