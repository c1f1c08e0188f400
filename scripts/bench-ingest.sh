#!/usr/bin/env bash
# Photo ingest figures: Dostup's full ingest of a 12 MP JPEG (criterion)
# against `vipsthumbnail -s 1280` on the same file, and the server's peak
# memory while 8 uploads of it run at once. Traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dostup-target}"

command -v vipsthumbnail >/dev/null || { apt-get update -q && apt-get install -y -q libvips-tools; }
command -v curl >/dev/null || apt-get install -y -q curl

echo "== Dostup ingest (criterion)"
cargo bench --bench ingest -- --noplot 2>&1 | grep -E "^ingest|time:"
photo="target/bench-12mp.jpg"
[ -n "${DOSTUP_BENCH_JPEG:-}" ] && photo="$DOSTUP_BENCH_JPEG"

echo "== vipsthumbnail -s 1280 (20 runs)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
start=$(date +%s%N)
for _ in $(seq 1 20); do vipsthumbnail -s 1280 -o "$out/t.jpg" "$photo"; done
end=$(date +%s%N)
echo "mean: $(( (end - start) / 20 / 1000000 )) ms per thumbnail (process start included)"

echo "== peak server memory, 8 concurrent uploads"
cargo build --release --locked --bin dostup >/dev/null 2>&1
data="$out/data"
# As deployed (deploy/Containerfile, deploy/dostup.service): glibc with a fixed
# mmap threshold. INGEST_GLIBC_DEFAULT=1 measures glibc's own default instead.
malloc=(MALLOC_MMAP_THRESHOLD_=131072)
[ "${INGEST_GLIBC_DEFAULT:-0}" = 1 ] && malloc=(-u MALLOC_MMAP_THRESHOLD_)
env "${malloc[@]}" "$CARGO_TARGET_DIR/release/dostup" serve --demo --bind 127.0.0.1:0 --data-dir "$data" \
    --photo-max-bytes 62914560 >"$out/server.log" 2>/dev/null &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -rf "$out"' EXIT
for _ in $(seq 1 100); do grep -q "^Listening on" "$out/server.log" && break; sleep 0.1; done
base="$(sed -n 's/^Listening on \(http:[^ ]*\).*/\1/p' "$out/server.log")"
token="$(curl -fsS "$base/api/v1/auth/login" -H 'content-type: application/json' \
    -d '{"email":"volunteer@demo.local","password":"demo-password"}' | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')"
inst="$(curl -fsS "$base/api/v1/institutions?limit=1" -H "authorization: Bearer $token" | sed -n 's/.*"items":\[{"id":"\([^"]*\)".*/\1/p')"
site="$(curl -fsS "$base/api/v1/institutions/$inst/sites" -H "authorization: Bearer $token" | sed -n 's/.*"items":\[{"id":"\([^"]*\)".*/\1/p')"
before=$(grep VmRSS "/proc/$server/status" | awk '{print $2}')
pids=()
for i in $(seq 1 8); do
    audit="$(cat /proc/sys/kernel/random/uuid)"
    curl -fsS -X PUT "$base/api/v1/audits/$audit" -H "authorization: Bearer $token" \
        -H 'content-type: application/json' -d "{\"site_id\":\"$site\"}" >/dev/null
    curl -fsS -o /dev/null "$base/api/v1/audits/$audit/photos" -H "authorization: Bearer $token" \
        -F item=entrance.level_entrance -F "file=@$photo;filename=p$i.jpg" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
peak=$(grep VmHWM "/proc/$server/status" | awk '{print $2}')
echo "RSS before: $((before / 1024)) MB; peak during 8 concurrent uploads: $((peak / 1024)) MB"
