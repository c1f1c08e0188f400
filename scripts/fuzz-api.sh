#!/usr/bin/env bash
# Fuzzes every route of the OpenAPI document with schemathesis and fails on
# any answer the service should never give: a 5xx, or a connection cut off
# (a panic, a stream broken after its 200). Runs the service's debug build
# (overflow checks on) with its demo data, on the embedded SQLite default or
# on PostgreSQL, as an admin, a volunteer and a reviewer in turn. Before
# fuzzing it seeds audits in every state (draft, submitted with photos,
# claimed, approved), an upload and a publication, and the hooks in
# scripts/fuzz/hooks.py point half the generated requests at them.
#
# Traffic goes only to the server this script starts on 127.0.0.1; the
# server, its data directory and the PostgreSQL database are removed on exit.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/fuzz-api.sh [options] [sqlite|postgres]

Options:
  -n, --examples N   generated cases per route and phase (default 80)
      --no-build     use the debug binary already built
  -h, --help

Environment:
  FUZZ_SEED          seed of the hooks' choices (default random, printed)
  FUZZ_PG_URL        PostgreSQL server to create the scratch database on
                     (default postgres://postgres@127.0.0.1:5432; loopback only)
  CARGO_TARGET_DIR   default $HOME/.cache/dostup-target
Needs schemathesis 4 (`pip install schemathesis`), python3, curl and jq.
EOF
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
database=sqlite
examples=80
build=1
pg_url="${FUZZ_PG_URL:-postgres://postgres@127.0.0.1:5432}"

while (($# > 0)); do
  case "$1" in
    -n | --examples) examples="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h | --help) usage; exit 0 ;;
    sqlite | postgres) database="$1"; shift ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
[[ "$examples" =~ ^[0-9]+$ ]] || { echo "not a whole number: $examples" >&2; exit 2; }
[[ "$pg_url" == postgres://*@127.0.0.1:* || "$pg_url" == postgres://*@localhost:* ]] ||
  { echo "FUZZ_PG_URL must name a server on loopback" >&2; exit 2; }

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

for tool in st python3 curl jq; do
  command -v "$tool" >/dev/null || die "$tool is missing (schemathesis: pip install schemathesis)"
done

target="${CARGO_TARGET_DIR:-$HOME/.cache/dostup-target}"
bin="$target/debug/dostup"
if ((build)); then
  (cd "$root" && CARGO_TARGET_DIR="$target" cargo build --locked --bin dostup)
fi
[[ -x "$bin" ]] || die "no debug binary at $bin (run without --no-build)"

work="$(mktemp -d)"
server_pid=""
scratch_db=""
cleanup() {
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  if [[ -n "$scratch_db" ]]; then
    psql "$pg_url/postgres" -qc "DROP DATABASE IF EXISTS $scratch_db WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

args=(serve --demo --bind 127.0.0.1:0 --data-dir "$work/data"
  --checklists-dir "$root/checklists" --access-token-ttl-secs 7200)
if [[ "$database" == postgres ]]; then
  scratch_db="dostup_fuzz_$$"
  psql "$pg_url/postgres" -qc "CREATE DATABASE $scratch_db" >/dev/null
  args+=(--database-url "$pg_url/$scratch_db?sslmode=disable")
fi
(
  while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep '^DOSTUP_' || true)
  export RUST_BACKTRACE=1 RUST_LOG="${RUST_LOG:-warn}"
  exec "$bin" "${args[@]}"
) >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
addr=""
for _ in $(seq 1 600); do # at most 60 s for migrations and the demo seed
  addr="$(sed -n 's|^Listening on http://\([^ ]*\).*|\1|p' "$work/server.out" | head -n 1)"
  [[ -n "$addr" ]] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
[[ -n "$addr" ]] || { tail -n 20 "$work/server.err" >&2; die "the server did not report its address"; }
[[ "$addr" == 127.0.0.1:* ]] || die "the server listens on $addr, not on loopback"
base="http://$addr"
log "server on $base ($database)"

log "seeding audits in every state, photos, an upload and a publication"
python3 "$here/fuzz/seed.py" "$base" "$root/checklists" >"$work/ids.json" ||
  die "seeding failed"
seed="${FUZZ_SEED:-$RANDOM}"
log "hooks' seed: $seed (FUZZ_SEED=$seed repeats their choices)"

failed=0
for who in admin volunteer reviewer; do
  token="$(jq -er ".tokens.$who" "$work/ids.json")"
  log "fuzzing every route as $who ($examples cases per route and phase)"
  # The document's paths carry the /api/v1 prefix themselves. A route whose
  # body schemathesis cannot write (tus PATCH, application/offset+octet-stream)
  # is reported as an error of the tool, not counted here.
  (cd "$work" && PYTHONPATH="$here/fuzz" SCHEMATHESIS_HOOKS=hooks FUZZ_IDS="$work/ids.json" \
    FUZZ_BASE="$base" FUZZ_TOKEN="$token" FUZZ_SEED="$seed" st run "$base/api/v1/openapi.json" --url "$base" \
    -H "Authorization: Bearer $token" --checks not_a_server_error,problem_json \
    --max-examples "$examples" --workers 2 --phases examples,coverage,fuzzing \
    --exclude-name 'PATCH /api/v1/uploads/{id}') >"$work/st-$who.log" 2>&1 || true
  grep -E 'generated|passed' "$work/st-$who.log" | tail -n 1 >&2 || true
  if grep -qE '^_{3,}' "$work/st-$who.log"; then
    sed -n '/ERRORS\|FAILURES/,/WARNINGS/p' "$work/st-$who.log" >&2
    failed=1
  fi
done
if grep -q 'panicked' "$work/server.err"; then
  grep -A3 'panicked' "$work/server.err" | head -n 40 >&2
  failed=1
fi
((failed == 0)) || die "the service answered something it never should (above)"
log "no 5xx, no cut connection, no panic"
