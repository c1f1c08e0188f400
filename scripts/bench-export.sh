#!/usr/bin/env bash
# Answers export figures: the server's memory while it streams a CSV of
# 1,000,000 answers (GET /api/v1/ratings/answers). One audit is answered through
# the API, approved, and copied in the database until the region holds enough
# approved audits; then the export runs once with curl. Traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dostup-target}"
answers_wanted="${EXPORT_ANSWERS:-1000000}"

need=()
for tool in curl jq sqlite3; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then apt-get update -q && apt-get install -y -q "${need[@]}"; fi

cargo build --release --locked --bin dostup >/dev/null 2>&1
out="$(mktemp -d)"
data="$out/data"
# As deployed (deploy/Containerfile, deploy/dostup.service): glibc with a fixed
# mmap threshold. EXPORT_GLIBC_DEFAULT=1 measures glibc's own default instead.
malloc=(MALLOC_MMAP_THRESHOLD_=131072)
[ "${EXPORT_GLIBC_DEFAULT:-0}" = 1 ] && malloc=(-u MALLOC_MMAP_THRESHOLD_)
env -u DOSTUP_DATABASE_URL -u DOSTUP_STORAGE "${malloc[@]}" "$CARGO_TARGET_DIR/release/dostup" \
    serve --demo --bind 127.0.0.1:0 --data-dir "$data" >"$out/server.log" 2>/dev/null &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -rf "$out"' EXIT
for _ in $(seq 1 100); do grep -q "^Listening on" "$out/server.log" && break; sleep 0.1; done
base="$(sed -n 's/^Listening on \(http:[^ ]*\).*/\1/p' "$out/server.log")"
login() {
    curl -fsS "$base/api/v1/auth/login" -H 'content-type: application/json' \
        -d "{\"email\":\"$1\",\"password\":\"demo-password\"}" | jq -r .access_token
}
volunteer="$(login volunteer@demo.local)"
admin="$(login admin@demo.local)"
inst="$(curl -fsS -G "$base/api/v1/institutions" --data-urlencode "text=научная библиотека" \
    -H "authorization: Bearer $volunteer" | jq -r '.items[0].id')"
site="$(curl -fsS "$base/api/v1/institutions/$inst/sites" -H "authorization: Bearer $volunteer" | jq -r '.items[0].id')"
audit="$(cat /proc/sys/kernel/random/uuid)"
curl -fsS -X PUT "$base/api/v1/audits/$audit" -H "authorization: Bearer $volunteer" \
    -H 'content-type: application/json' -d "{\"site_id\":\"$site\"}" >/dev/null
jq '{answers: .answers}' checklists/examples/accessible-new-building.json >"$out/answers.json"
curl -fsS -X PATCH "$base/api/v1/audits/$audit/answers" -H "authorization: Bearer $volunteer" \
    -H 'content-type: application/json' -H 'if-match: "1"' --data-binary "@$out/answers.json" >/dev/null
per_audit="$(jq '.answers | length' "$out/answers.json")"
copies=$(( (answers_wanted + per_audit - 1) / per_audit - 1 ))

# Approve it and copy it in the database (the API path is what the tests cover;
# here only the export is measured).
db="$data/dostup.db"
columns="$(sqlite3 "$db" "SELECT group_concat(name, ', ') FROM pragma_table_info('audits') WHERE name <> 'id'")"
sqlite3 "$db" >/dev/null <<SQL
PRAGMA busy_timeout = 10000;
UPDATE audits SET status = 'approved', submitted_at = strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'), revision = 1;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $copies)
INSERT INTO audits (id, $columns) SELECT randomblob(16), $columns FROM audits, n;
SQL
echo "approved audits: $(sqlite3 "$db" "SELECT count(*) FROM audits WHERE status = 'approved'") x $per_audit answers"

year="$(date +%Y)"
before=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
echo 5 >"/proc/$server/clear_refs" 2>/dev/null || true   # resets the peak (VmHWM) to now
start=$(date +%s%N)
lines="$(curl -fsS -G "$base/api/v1/ratings/answers" -H "authorization: Bearer $admin" \
    --data-urlencode region=48 --data-urlencode sector=culture --data-urlencode "year=$year" | wc -l)"
end=$(date +%s%N)
peak=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
echo "exported $((lines - 1)) answers in $(( (end - start) / 1000000 )) ms"
echo "server RSS before the export: $((before / 1024)) MB; peak during it: $((peak / 1024)) MB"
