#!/usr/bin/env bash
# Benchmark: one large object straight to the embedded S3 endpoint (presign-only mode), as a
# multipart upload with 4 parts in flight against a single presigned PUT of the same bytes,
# alternating, in the same run. Each timing covers filegate's calls and the transfer: create
# → sign the parts → PUT them with 4 curl processes → complete, against sign-upload → PUT →
# confirm. Also the server's CPU time (it hosts the embedded endpoint) for each.
# Usage: scripts/bench-multipart.sh [size in MiB, default 1024] [rounds, default 3].
# Needs curl and python3. PROFILE=dev runs a debug build (to try the script, not to measure).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${1:-1024}
ROUNDS=${2:-3}
PARALLEL=4
PART=$((8 * 1024 * 1024)) # filegate's default part size below 80 GiB
PROFILE=${PROFILE:-release}
cargo build --profile "$PROFILE" -q -p filegate-server -p filegate-admin
BIN=target/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")

DIR=$(mktemp -d)
export FILEGATE_DATA_DIR=$DIR/data FILEGATE_LISTEN=127.0.0.1:0 FILEGATE_S3_LISTEN=127.0.0.1:0 \
  FILEGATE_LOG_FORMAT=json FILEGATE_MAX_UPLOAD_SIZE=$((8 * 1024 * 1024 * 1024)) \
  FILEGATE_RATE_LIMIT_PER_SECOND=0 RUST_LOG=info \
  BETTER_AUTH_SECRET=bench-secret-0123456789abcdef0123456789abcdef
"$BIN/filegate-server" > "$DIR/server.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
API=""
for _ in $(seq 100); do
  API=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    try:
        api = json.loads(line).get("fields", {}).get("api")
    except ValueError:
        continue
    if api:
        print("http://" + api.removeprefix("http://"))
        break' "$DIR/server.log")
  [ -n "$API" ] && curl -sf "$API/healthz" > /dev/null && break
  sleep 0.2
done
[ -n "$API" ] || { echo "server did not start"; cat "$DIR/server.log"; exit 1; }

TOKEN=$("$BIN/filegate-admin" token --user bench --org bench-org --role owner)
AUTH="Authorization: Bearer $TOKEN"
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
cpu() { awk '{print $14 + $15}' /proc/$PID/stat; } # user + system ticks
TICK=$(getconf CLK_TCK)
now() { date +%s.%N; }

head -c "${SIZE_MB}M" /dev/urandom > "$DIR/big.bin"
SIZE=$(stat -c %s "$DIR/big.bin")
# The client's slicing, done once and not timed (a browser slices a File without copying).
mkdir "$DIR/parts"
split -b "$PART" -d -a 5 "$DIR/big.bin" "$DIR/parts/p"
echo "object: ${SIZE_MB} MiB, $(ls "$DIR/parts" | wc -l) parts of $((PART / 1048576)) MiB, $PARALLEL in flight"

single() {
  local t0 c0 signed url
  c0=$(cpu); t0=$(now)
  signed=$(curl -sf -X POST "$API/api/v1/media/sign-upload" -H "$AUTH" -H 'Content-Type: application/json' \
    -d "{\"filename\":\"single.bin\",\"contentType\":\"application/octet-stream\",\"size\":$SIZE}")
  url=$(echo "$signed" | json '["uploadUrl"]')
  # Exactly the signed headers (Content-Type, If-None-Match; curl sets Content-Length).
  local -a hargs=()
  while IFS= read -r h; do hargs+=(-H "$h"); done < <(echo "$signed" | python3 -c '
import json, sys
for k, v in json.load(sys.stdin)["headers"].items():
    if k.lower() != "content-length": print(f"{k}: {v}")')
  curl -sf -o /dev/null -X PUT -T "$DIR/big.bin" "${hargs[@]}" "$url"
  curl -sf -o /dev/null -X POST "$API/api/v1/media/$(echo "$signed" | json '["id"]')/confirm" -H "$AUTH"
  report "single PUT" "$t0" "$c0"
}

multipart() {
  local t0 c0 created id count
  c0=$(cpu); t0=$(now)
  created=$(curl -sf -X POST "$API/api/v1/media/multipart" -H "$AUTH" -H 'Content-Type: application/json' \
    -d "{\"filename\":\"multi.bin\",\"contentType\":\"application/octet-stream\",\"size\":$SIZE,\"partSize\":$PART}")
  id=$(echo "$created" | json '["id"]')
  count=$(echo "$created" | json '["partCount"]')
  # Part URLs in batches of up to 1000, then "<part file> <url>" lines for the workers.
  python3 - "$API" "$TOKEN" "$id" "$count" "$DIR/parts" > "$DIR/jobs" <<'PY'
import json, sys, urllib.request
api, token, mid, count, parts = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
for start in range(1, count + 1, 1000):
    numbers = list(range(start, min(start + 1000, count + 1)))
    req = urllib.request.Request(f"{api}/api/v1/media/{mid}/parts", method="POST",
        data=json.dumps({"partNumbers": numbers}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    for p in json.load(urllib.request.urlopen(req))["parts"]:
        print(p["partNumber"], f"{parts}/p{p['partNumber'] - 1:05d}", p["url"])
PY
  # shellcheck disable=SC2016
  xargs -P "$PARALLEL" -L 1 sh -c \
    'curl -sf -o /dev/null -D - -X PUT -T "$1" "$2" | tr -d "\r" | sed -n "s/^[Ee][Tt][Aa][Gg]: //p" | sed "s/^/$0 /"' \
    < "$DIR/jobs" > "$DIR/etags"
  python3 -c '
import json, sys
parts = sorted((int(n), e) for n, e in (l.split(" ", 1) for l in open(sys.argv[1]).read().splitlines()))
print(json.dumps({"parts": [{"partNumber": n, "etag": e} for n, e in parts]}))' "$DIR/etags" > "$DIR/complete.json"
  curl -sf -o /dev/null -X POST "$API/api/v1/media/$id/complete" -H "$AUTH" -H 'Content-Type: application/json' \
    --data-binary "@$DIR/complete.json"
  report "multipart, $PARALLEL parts in flight" "$t0" "$c0"
}

report() {
  python3 -c '
import sys
name, t0, t1, c0, c1, tick, size = sys.argv[1:]
secs = float(t1) - float(t0)
print(f"{name:32s} {secs:6.2f} s  {int(size) / secs / 1048576:5.0f} MiB/s  server CPU {(int(c1) - int(c0)) / int(tick):5.2f} s")' \
    "$1" "$2" "$(now)" "$3" "$(cpu)" "$TICK" "$SIZE"
}

for round in $(seq "$ROUNDS"); do
  echo "round $round"
  single
  multipart
done
