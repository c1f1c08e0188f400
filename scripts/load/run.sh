#!/usr/bin/env bash
# Load test of the audit write path and of checklist revalidation (issue 4):
#   1. PATCH /api/v1/audits/{id}/answers at 64 connections, each connection on
#      its own audit, carrying the version from the previous ETag in If-Match,
#      first with the full answer, then with Prefer: return=minimal, then
#      with the full answer and a fresh Idempotency-Key on every request,
#      as phones send them (a key and Accept-Encoding: gzip), and last as a
#      phone asking for the short answer (a key, gzip, return=minimal);
#   2. GET /api/v1/checklists/{id}/versions/{version} with If-None-Match (304)
#      at 64 connections;
# on the embedded SQLite default and on PostgreSQL. See docs/performance.md.
#
# Traffic goes only to the server this script starts on 127.0.0.1; every
# wait is bounded, every wrk run has a fixed duration, and the server, its
# data directory and the PostgreSQL database are removed on exit.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/load/run.sh [options] [sqlite|postgres|both]

Options (environment variable in brackets):
  -d, --duration SECS     measured seconds per workload [LOAD_DURATION, default 20]
  -w, --warmup SECS       warm-up seconds before each measurement [LOAD_WARMUP, default 5]
  -c, --connections N     connections for both workloads [LOAD_CONNECTIONS, default 64]
      --get-threads N     wrk threads for the 304 workload [LOAD_GET_THREADS, default 2]
      --only LIST         run only these workloads, comma-separated: patch,
                          patch-minimal, patch-keyed, patch-phone,
                          patch-phone-minimal, checklist-304 [LOAD_ONLY,
                          default all]
      --no-build          use the release binary already built
  -h, --help

Other environment:
  LOAD_DATABASES     sqlite, postgres or both (default both; an argument wins)
  LOAD_PG_URL        PostgreSQL server to create the scratch database on
                     (default postgres://postgres@127.0.0.1:5432; loopback only)
  LOAD_PG_OPTIONS    query string for the server's database URL, e.g.
                     sslmode=disable (default none: the driver's own, which
                     asks for TLS)
  LOAD_DATABASE_PING the server's --database-ping: always (its default) or
                     when-in-doubt
  LOAD_RESULTS       also write the result table (TSV) to this file
  CARGO_TARGET_DIR   default $HOME/.cache/dostup-target
  RUST_LOG           server log filter (default info, the service's default)
EOF
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

duration="${LOAD_DURATION:-20}"
warmup="${LOAD_WARMUP:-5}"
connections="${LOAD_CONNECTIONS:-64}"
get_threads="${LOAD_GET_THREADS:-2}"
databases="${LOAD_DATABASES:-both}"
pg_url="${LOAD_PG_URL:-postgres://postgres@127.0.0.1:5432}"
pg_options="${LOAD_PG_OPTIONS:-}"
database_ping="${LOAD_DATABASE_PING:-}"
only="${LOAD_ONLY:-}"
build=1

while (($# > 0)); do
  case "$1" in
    -d | --duration) duration="$2"; shift 2 ;;
    -w | --warmup) warmup="$2"; shift 2 ;;
    -c | --connections) connections="$2"; shift 2 ;;
    --get-threads) get_threads="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h | --help) usage; exit 0 ;;
    sqlite | postgres | both) databases="$1"; shift ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

for n in "$duration" "$warmup" "$connections" "$get_threads"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "not a whole number: $n" >&2; exit 2; }
done
((duration >= 1 && duration <= 600)) || { echo "duration must be 1..600 s" >&2; exit 2; }
((warmup <= 120)) || { echo "warm-up must be at most 120 s" >&2; exit 2; }
((connections >= 1 && connections <= 512)) || { echo "connections must be 1..512" >&2; exit 2; }
((get_threads >= 1 && get_threads <= connections)) || { echo "get threads must be 1..connections" >&2; exit 2; }
all_workloads=",patch,patch-minimal,patch-keyed,patch-phone,patch-phone-minimal,checklist-304,"
only="${only//[[:space:]]/}"
if [[ -n "$only" ]]; then
  [[ -n "${only//,/}" ]] || { echo "--only names no workload" >&2; exit 2; }
  for w in ${only//,/ }; do
    [[ "$all_workloads" == *",$w,"* ]] || { echo "unknown workload: $w" >&2; exit 2; }
  done
fi
wanted() { [[ -z "$only" || ",$only," == *",$1,"* ]]; }
any_patch_wanted() {
  wanted patch || wanted patch-minimal || wanted patch-keyed || wanted patch-phone ||
    wanted patch-phone-minimal
}
case "$databases" in
  sqlite) dbs=(sqlite) ;;
  postgres) dbs=(postgres) ;;
  both) dbs=(sqlite postgres) ;;
  *) echo "databases must be sqlite, postgres or both" >&2; exit 2 ;;
esac

# The PostgreSQL server must be on this machine: the test never leaves loopback.
pg_url="${pg_url%/}"
case "$pg_url" in
  postgres://*@127.0.0.1:* | postgres://*@localhost:* | postgres://*@\[::1\]:* | \
    postgres://127.0.0.1:* | postgres://localhost:* | postgres://\[::1\]:*) ;;
  *) if [[ " ${dbs[*]} " == *" postgres "* ]]; then
    echo "LOAD_PG_URL must name a loopback server (127.0.0.1, localhost or [::1]) with a port" >&2
    exit 2
  fi ;;
esac

case "$database_ping" in
  "" | always | when-in-doubt) ;;
  *) echo "LOAD_DATABASE_PING must be always or when-in-doubt" >&2; exit 2 ;;
esac

[[ "$pg_options" =~ ^[A-Za-z0-9_.=\&-]*$ ]] || {
  echo "LOAD_PG_OPTIONS must look like name=value&name=value" >&2
  exit 2
}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# --- state cleaned up on exit ------------------------------------------------

work="$(mktemp -d "${TMPDIR:-/tmp}/dostup-load.XXXXXX")"
server_pid=""
pg_db=""

stop_server() {
  if [[ -n "$server_pid" ]]; then
    if kill -0 "$server_pid" 2>/dev/null; then
      kill -TERM "$server_pid" 2>/dev/null || true
      for _ in $(seq 1 100); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
      done
      if kill -0 "$server_pid" 2>/dev/null; then
        log "server $server_pid ignored SIGTERM for 10 s; killing it"
        kill -KILL "$server_pid" 2>/dev/null || true
      fi
    fi
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}

drop_database() {
  if [[ -n "$pg_db" ]]; then
    psql "$pg_url/postgres" -q -v ON_ERROR_STOP=1 \
      -c "DROP DATABASE IF EXISTS \"$pg_db\" WITH (FORCE)" >/dev/null ||
      log "could not drop database $pg_db; drop it by hand"
    pg_db=""
  fi
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_server
  drop_database
  rm -rf -- "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- tools and binary ----------------------------------------------------------

ensure_tools() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v curl >/dev/null || missing+=(curl)
  command -v jq >/dev/null || missing+=(jq)
  if [[ " ${dbs[*]} " == *" postgres "* ]]; then
    command -v psql >/dev/null || missing+=(postgresql-client)
  fi
  ((${#missing[@]} == 0)) && return 0
  log "installing ${missing[*]} with apt-get"
  local sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || die "need root or sudo to install ${missing[*]}"
    sudo=(sudo)
  fi
  "${sudo[@]}" apt-get update
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
}

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dostup-target}"
bin="$CARGO_TARGET_DIR/release/dostup"

ensure_tools
if ((build)); then
  log "building the release binary (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  (cd "$root" && cargo build --release --locked --bin dostup)
fi
[[ -x "$bin" ]] || die "no release binary at $bin (run without --no-build)"

# --- server --------------------------------------------------------------------

base=""   # http://127.0.0.1:PORT of the running server
token=""

start_server() { # $1: label, $2: database URL or empty for the embedded default
  local label="$1" url="$2" data="$work/$1-data"
  mkdir -p "$data"
  local args=(serve --demo --bind 127.0.0.1:0 --data-dir "$data"
    --checklists-dir "$root/checklists" --access-token-ttl-secs 7200)
  [[ -n "$url" ]] && args+=(--database-url "$url")
  [[ -n "$database_ping" ]] && args+=(--database-ping "$database_ping")
  : >"$work/$label-server.out"
  # The server is configured by flags alone: drop any DOSTUP_* settings
  # (a DOSTUP_DATABASE_URL would otherwise replace the embedded default).
  (
    while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep '^DOSTUP_' || true)
    export RUST_LOG="${RUST_LOG:-info}"
    exec "$bin" "${args[@]}"
  ) >"$work/$label-server.out" 2>"$work/$label-server.err" &
  server_pid=$!
  local addr=""
  for _ in $(seq 1 600); do # at most 60 s for migrations and the demo seed
    addr="$(sed -n 's|^Listening on http://\([^ ]*\).*|\1|p' "$work/$label-server.out" | head -n 1)"
    [[ -n "$addr" ]] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z "$addr" ]]; then
    tail -n 20 "$work/$label-server.err" >&2 || true
    die "the $label server did not report its address"
  fi
  [[ "$addr" == 127.0.0.1:* ]] || die "the server listens on $addr, not on loopback"
  base="http://$addr"
  log "$label server (pid $server_pid) on $base"
}

http() { # curl against the local server only; extra arguments follow the path
  local method="$1" path="$2"
  shift 2
  curl -sS --fail-with-body --max-time 30 -X "$method" "$base$path" "$@"
}

login() {
  token="$(http POST /api/v1/auth/login -H 'Content-Type: application/json' \
    -d '{"email":"volunteer@demo.local","password":"demo-password"}' | jq -er .access_token)"
}

auth=()

create_audits() { # writes "<id> 1" lines to $work/audits
  local institution site i id status
  institution="$(http GET '/api/v1/institutions?limit=1' "${auth[@]}" | jq -er '.items[0].id')"
  site="$(http GET "/api/v1/institutions/$institution/sites?limit=1" "${auth[@]}" | jq -er '.items[0].id')"
  : >"$work/audits"
  for ((i = 0; i < connections; i++)); do
    id="$(cat /proc/sys/kernel/random/uuid)"
    status="$(curl -sS --max-time 30 -o "$work/put.json" -w '%{http_code}' -X PUT \
      "$base/api/v1/audits/$id" "${auth[@]}" -H 'Content-Type: application/json' \
      -d "{\"site_id\":\"$site\"}")"
    [[ "$status" == 201 ]] || { cat "$work/put.json" >&2; die "PUT audit answered $status"; }
    printf '%s 1\n' "$id" >>"$work/audits"
  done
  log "created $connections audits on site $site"
}

refresh_versions() { # re-reads each audit's version (ETag) after a warm-up
  local id _ etag
  # wrk stops without waiting for its last answers: let the requests still
  # in the server commit first, or the next run starts with a stale version.
  sleep 1
  : >"$work/audits.new"
  while read -r id _; do
    etag="$(curl -sS --max-time 30 -o /dev/null -D - "$base/api/v1/audits/$id" "${auth[@]}" |
      tr -d '\r' | awk -F': ' 'tolower($1) == "etag" { gsub(/"/, "", $2); print $2 }')"
    [[ "$etag" =~ ^[0-9]+$ ]] || die "audit $id has no numeric ETag"
    printf '%s %s\n' "$id" "$etag" >>"$work/audits.new"
  done <"$work/audits"
  mv "$work/audits.new" "$work/audits"
}

server_cpu_ticks() { # user + system time of every thread of the server, in clock ticks
  awk '{ print $14 + $15 }' "/proc/$server_pid/stat"
}

postgres_cpu_ticks() { # user + system time of the local PostgreSQL server's processes
  local stat sum=0 fields
  for stat in /proc/[0-9]*/stat; do
    # comm is field 2, in parentheses; user and system time are fields 14
    # and 15, and 16 and 17 those of exited children (backends that ended).
    fields="$(cat "$stat" 2>/dev/null)" || continue
    [[ "$fields" == *" (postgres) "* ]] || continue
    fields="${fields##*) }"
    read -r -a f <<<"$fields"
    sum=$((sum + f[11] + f[12] + f[13] + f[14]))
  done
  echo "$sum"
}

per_request() { # $1, $2: clock ticks before and after, $3: result file; µs per request
  awk -v before="$1" -v after="$2" -v hz="$(getconf CLK_TCK)" \
    -F'\t' 'END { printf "%.0f", ($3 > 0 ? (after - before) * 1e6 / hz / $3 : 0) }' "$3"
}

run_wrk() { # $1: label ("" = warm-up, not recorded), $2: seconds, $3: threads, $4: script
  local label="$1" seconds="$2" threads="$3" script="$4"
  local result="" cpu_before="" db_before=""
  if [[ -n "$label" ]]; then
    result="$work/results.tsv"
    cpu_before="$(server_cpu_ticks)"
    if [[ "$label" == postgres ]]; then db_before="$(postgres_cpu_ticks)"; fi
  fi
  DOSTUP_LOAD_TOKEN="$token" DOSTUP_LOAD_STATE="$work/audits" \
    DOSTUP_LOAD_RESULT="$result" DOSTUP_LOAD_LABEL="$label" \
    wrk -t"$threads" -c"$connections" -d"${seconds}s" --timeout 10s --latency \
    -s "$here/$script" "$base" >"$work/wrk.out" 2>&1 || { cat "$work/wrk.out" >&2; die "wrk failed"; }
  if [[ -n "$label" ]]; then
    # The server's CPU time per request wrk completed: what a request costs
    # the service, steadier than throughput while wrk shares the cores.
    local cpu_after cpu_us db_us="-"
    cpu_after="$(server_cpu_ticks)" # fails, and stops the script, if the server died
    cpu_us="$(per_request "$cpu_before" "$cpu_after" "$result")"
    if [[ -n "$db_before" ]]; then
      db_us="$(per_request "$db_before" "$(postgres_cpu_ticks)" "$result")"
    fi
    sed -i "\$ s/\$/\t$cpu_us\t$db_us/" "$result"
    cat "$work/wrk.out"
    log "server CPU: $cpu_us µs per request; PostgreSQL CPU: $db_us"
  else
    tail -n 1 "$work/wrk.out" | sed 's/^/   warm-up /' >&2
  fi
}

patch_run() { # $1: workload, $2: what is measured (logged), then NAME=value settings for patch.lua
  local workload="$1" what="$2"
  shift 2
  wanted "$workload" || return 0
  log "$label: $what"
  refresh_versions
  (
    export DOSTUP_LOAD_WORKLOAD="$workload" "$@"
    run_wrk "$label" "$duration" "$connections" patch.lua
  )
}

bench() { # $1: sqlite | postgres
  local label="$1" url=""
  if [[ "$label" == postgres ]]; then
    pg_db="dostup_load_$(date +%s)_$$"
    psql "$pg_url/postgres" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$pg_db\"" >/dev/null
    url="$pg_url/$pg_db${pg_options:+?$pg_options}"
    log "created database $pg_db"
  fi
  start_server "$label" "$url"
  login
  auth=(-H "Authorization: Bearer $token")
  create_audits

  # Every PATCH workload starts from the versions the audits have then.
  if ((warmup > 0)) && any_patch_wanted; then
    log "$label: warm-up, PATCH answers, $connections connections, ${warmup} s"
    run_wrk "" "$warmup" "$connections" patch.lua
  fi

  patch_run patch "PATCH answers, $connections connections, ${duration} s"

  # The same batches with `Prefer: return=minimal`: the answer carries the
  # new version and the evaluation's summary instead of the whole audit.
  patch_run patch-minimal "PATCH answers with Prefer: return=minimal" \
    DOSTUP_LOAD_PREFER=return=minimal

  # The full answer again, each request with its own Idempotency-Key: the
  # service then also claims the key and stores the answer for replay.
  patch_run patch-keyed "PATCH answers with an Idempotency-Key on every request" \
    DOSTUP_LOAD_KEY_PREFIX="load-$(date +%s%N)"

  # What a phone sends: a key on every request, and Accept-Encoding, which
  # the platforms' HTTP clients add by themselves (Android's: gzip).
  patch_run patch-phone "PATCH answers as a phone sends them: Idempotency-Key and Accept-Encoding: gzip" \
    DOSTUP_LOAD_KEY_PREFIX="load-$(date +%s%N)" DOSTUP_LOAD_ACCEPT_ENCODING=gzip

  # A phone that asks for the short answer: the version and the verdict after
  # each batch, the whole audit only when it shows it (a conditional GET).
  patch_run patch-phone-minimal "PATCH answers as a phone asking for the short answer: Idempotency-Key, gzip, Prefer: return=minimal" \
    DOSTUP_LOAD_KEY_PREFIX="load-$(date +%s%N)" DOSTUP_LOAD_ACCEPT_ENCODING=gzip \
    DOSTUP_LOAD_PREFER=return=minimal

  if wanted checklist-304; then
    local first path etag status
    first="$(http GET /api/v1/checklists "${auth[@]}" | jq -ec '.items[0]')"
    path="/api/v1/checklists/$(jq -r .id <<<"$first")/versions/$(jq -r .version <<<"$first")"
    etag="$(jq -r .etag <<<"$first")"
    status="$(curl -sS --max-time 30 -o /dev/null -w '%{http_code}' "$base$path" "${auth[@]}" -H "If-None-Match: $etag")"
    [[ "$status" == 304 ]] || die "GET $path with If-None-Match answered $status, not 304"
    log "$label: GET $path with If-None-Match, $connections connections, $get_threads threads"
    export DOSTUP_LOAD_PATH="$path" DOSTUP_LOAD_ETAG="$etag"
    if ((warmup > 0)); then run_wrk "" "$(((warmup + 1) / 2))" "$get_threads" not_modified.lua; fi
    run_wrk "$label" "$duration" "$get_threads" not_modified.lua
  fi

  stop_server
  drop_database
}

log "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1); $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"
for db in "${dbs[@]}"; do
  bench "$db"
done

# --- table ---------------------------------------------------------------------

{
  printf '\n%-9s %-19s %10s %9s %9s %9s %10s %8s %8s  %s\n' \
    database workload 'req/s' 'p50 ms' 'p99 ms' 'max ms' unexpected 'µs/req' 'db µs' goal
  while IFS=$'\t' read -r label workload _requests rps p50 p99 max unexpected socket cpu_us db_us; do
    goal=""
    case "$workload" in
      patch | patch-minimal | patch-keyed | patch-phone | patch-phone-minimal) goal="≥ 2000 req/s, p99 ≤ 25 ms: $(awk -v r="$rps" -v p="$p99" 'BEGIN { print (r >= 2000 && p <= 25) ? "met" : "missed" }')" ;;
      checklist-304) goal="≥ 20000 req/s: $(awk -v r="$rps" 'BEGIN { print (r >= 20000) ? "met" : "missed" }')" ;;
    esac
    ((socket > 0)) && goal="$goal; $socket socket errors"
    printf '%-9s %-19s %10s %9s %9s %9s %10s %8s %8s  %s\n' \
      "$label" "$workload" "$rps" "$p50" "$p99" "$max" "$unexpected" "$cpu_us" "$db_us" "$goal"
  done <"$work/results.tsv"
  printf '\nunexpected: non-2xx answers to PATCH (412 included), non-304 answers to the conditional GET.\n'
  printf 'µs/req: the server'"'"'s CPU time (user and system, every thread) per request completed.\n'
  printf 'db µs: the same for the PostgreSQL server'"'"'s processes (all of them: keep the machine otherwise idle).\n'
  printf '%s; %d s per workload after a %d s warm-up; wrk shares the cores with the server.\n' \
    "$(nproc) cores" "$duration" "$warmup"
} | tee "$work/table.txt"
if [[ -n "${LOAD_RESULTS:-}" ]]; then
  cp "$work/results.tsv" "$LOAD_RESULTS"
fi
