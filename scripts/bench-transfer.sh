#!/usr/bin/env bash
# Load benchmark: a large object up and down through the server (peak RSS, throughput),
# next to the same bytes moved directly to/from the embedded S3 endpoint with presigned
# URLs, and requests/s for a small public object on the files listener (wrk).
# Usage: scripts/bench-transfer.sh [size in MiB, default 1024]. Needs curl, python3, wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${1:-1024}
cargo build --release -q -p filegate-server -p filegate-admin

DIR=$(mktemp -d)
PORT_API=28787 PORT_S3=28788 PORT_FILES=28789
API=http://127.0.0.1:$PORT_API
export FILEGATE_DATA_DIR=$DIR/data FILEGATE_MANAGED=true \
  FILEGATE_LISTEN=127.0.0.1:$PORT_API FILEGATE_S3_LISTEN=127.0.0.1:$PORT_S3 \
  FILEGATE_FILES_LISTEN=127.0.0.1:$PORT_FILES FILEGATE_MAX_UPLOAD_SIZE=$((4 * 1024 * 1024 * 1024)) \
  FILEGATE_RATE_LIMIT_PER_SECOND=0 RUST_LOG=warn \
  BETTER_AUTH_SECRET=bench-secret-0123456789abcdef0123456789abcdef
target/release/filegate-server > "$DIR/server.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 50); do curl -sf "$API/healthz" > /dev/null && break; sleep 0.2; done

TOKEN=$(target/release/filegate-admin token --user bench --org bench-org --role owner)
AUTH="Authorization: Bearer $TOKEN"
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
rss() { awk '/VmHWM|VmRSS/ {printf "%s %d MiB  ", $1, $2/1024}' /proc/$PID/status; echo; }

curl -sf -X POST "$API/storage/v1/bucket" -H "$AUTH" -H 'Content-Type: application/json' \
  -d "{\"name\":\"bench\",\"fileSizeLimit\":$((4 * 1024 * 1024 * 1024))}" > /dev/null
head -c "${SIZE_MB}M" /dev/urandom > "$DIR/big.bin"
echo "object: ${SIZE_MB} MiB; after start: $(rss)"

up=$(curl -sf -o /dev/null -w '%{time_total} %{speed_upload}' -X POST -T "$DIR/big.bin" \
  -H "$AUTH" -H 'Content-Type: application/octet-stream' "$API/storage/v1/object/bench/big.bin")
echo "upload through filegate:   ${up% *} s, $(( ${up#* } / 1048576 )) MiB/s; $(rss)"
down=$(curl -sf -o /dev/null -w '%{time_total} %{speed_download}' -H "$AUTH" "$API/storage/v1/object/bench/big.bin")
echo "download through filegate: ${down% *} s, $(( ${down#* } / 1048576 )) MiB/s; $(rss)"

# The same bytes straight to and from the storage endpoint (no filegate in the path).
size=$(stat -c %s "$DIR/big.bin")
pre=$(curl -sf -X POST "$API/storage/v1/presign/bench/direct.bin" -H "$AUTH" -H 'Content-Type: application/json' \
  -d "{\"contentType\":\"application/octet-stream\",\"size\":$size}")
url=$(echo "$pre" | json '["uploadUrl"]')
dup=$(curl -sf -o /dev/null -w '%{time_total} %{speed_upload}' -X PUT -T "$DIR/big.bin" -H 'Content-Type: application/octet-stream' "$url")
echo "direct presigned PUT:      ${dup% *} s, $(( ${dup#* } / 1048576 )) MiB/s"
curl -sf -X POST "$API/storage/v1/confirm/bench/direct.bin" -H "$AUTH" > /dev/null
get=$(curl -sf "$API/api/v1/files/$(echo "$pre" | json '["id"]')/download?redirect=true" -H "$AUTH" -o /dev/null -w '%{redirect_url}' || true)
if [ -n "$get" ]; then
  ddown=$(curl -sf -o /dev/null -w '%{time_total} %{speed_download}' "$get")
  echo "direct presigned GET:      ${ddown% *} s, $(( ${ddown#* } / 1048576 )) MiB/s"
fi
echo "peak after transfers: $(rss)"

# Small public object, 64 connections.
head -c 4096 /dev/urandom > "$DIR/small.png"
TOKEN_U=$(target/release/filegate-admin token --user benchuser)
curl -sf -X POST -T "$DIR/small.png" -H "Authorization: Bearer $TOKEN_U" -H 'Content-Type: image/png' \
  "$API/storage/v1/object/avatars/benchuser/avatar.png" > /dev/null
key=benchuser/avatars/benchuser/avatar.png
purl=$(curl -sf -X POST "$API/storage/v1/url" -H "Authorization: Bearer $TOKEN_U" -H 'Content-Type: application/json' -d "{\"key\":\"$key\"}" | json '["url"]')
echo "public 4 KiB object: $purl"
wrk -t2 -c64 -d10s "$purl" | sed -n '/Requests\/sec/p;/Latency/p;/Non-2xx/p'
echo "peak at the end: $(rss)"
