#!/usr/bin/env bash
# The benchmark: retort against distilabel and against the server's own limit (a raw HTTP
# load generator), on the same local OpenAI-compatible server, side by side in one run.
# Writes bench/RESULTS.md, which explains what each scenario measures.
#
#   bench/run.sh                      # every scenario with the issue's sizes (10-15 minutes on 2 CPUs)
#   bench/run.sh --scenarios a,c      # some of them
#   bench/run.sh --smoke              # tiny sizes, a minute: checks that everything works
#
# Options (defaults in brackets):
#   --scenarios LIST        a, b, c [a,b,c]
#   --n-a N                 seeds in scenario (a), instant server [100000]
#   --distilabel-n-a N      seeds distilabel gets in (a) [10000: at its rate 100,000 take about an hour; rates are compared]
#   --n-b N                 seeds in scenario (b), 200 ms per request [10000]
#   --distilabel-n-b N      seeds distilabel gets in (b) [10000]
#   --n-c N                 seeds in scenario (c), retort alone [1000000]
#   --concurrency-a C       requests in flight in (a) [64]
#   --concurrency-b C       requests in flight in (b) [256]
#   --latency-b MS          the server's latency per request in (b) [200]
#   --wrk-seconds S         how long the raw load generator runs [10]
#   --no-distilabel         skip distilabel (no Python environment needed)
#   --results FILE          where the report goes [bench/RESULTS.md; with --smoke WORK/RESULTS-smoke.md]
#   --work DIR              seeds, run directories, measurements [target/bench]
#
# CPU placement: on a machine with at least 2 cores the server runs on CPU 0 (one worker
# thread) and every client (wrk, retort, distilabel) on the other CPUs, so each client gets
# the same share of the machine and the server's capacity is the same for all of them.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

scenarios="a,b,c"
n_a=100000
dn_a=10000
n_b=10000
dn_b=10000
n_c=1000000
c_a=64
c_b=256
latency_b=200
wrk_seconds=10
distilabel=1
results=""
work="target/bench"
smoke=0
command_line="bench/run.sh${*:+ $*}"
while [ $# -gt 0 ]; do
  case "$1" in
    --scenarios) scenarios="$2"; shift 2 ;;
    --n-a) n_a="$2"; shift 2 ;;
    --distilabel-n-a) dn_a="$2"; shift 2 ;;
    --n-b) n_b="$2"; shift 2 ;;
    --distilabel-n-b) dn_b="$2"; shift 2 ;;
    --n-c) n_c="$2"; shift 2 ;;
    --concurrency-a) c_a="$2"; shift 2 ;;
    --concurrency-b) c_b="$2"; shift 2 ;;
    --latency-b) latency_b="$2"; shift 2 ;;
    --wrk-seconds) wrk_seconds="$2"; shift 2 ;;
    --no-distilabel) distilabel=0; shift ;;
    --results) results="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --smoke)
      n_a=2000; dn_a=300; n_b=500; dn_b=300; n_c=20000; latency_b=50; wrk_seconds=2
      smoke=1; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
# A smoke run's report goes beside its measurements, not over bench/RESULTS.md.
if [ -z "$results" ]; then
  if [ "$smoke" = 1 ]; then results="$work/RESULTS-smoke.md"; else results="bench/RESULTS.md"; fi
fi
has() { case ",$scenarios," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
log() { printf '\n== %s\n' "$*" >&2; }

# --- What the benchmark needs -------------------------------------------------------------
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v wrk >/dev/null; then
  log "installing wrk (Debian package)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
fi
venv="bench/.venv"
if [ "$distilabel" = 1 ] && { [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import distilabel' 2>/dev/null; }; then
  log "installing distilabel into $venv"
  if ! python3 -m venv "$venv"; then
    # Debian ships venv separately.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install -q "distilabel[openai]==1.5.3" requests  # distilabel imports requests without declaring it
fi
log "building retort and retort-mock (release, native CPU)"
RUSTFLAGS="$("$repo"/scripts/cpu-flags.sh)" cargo build --release --locked -p retort-cli -p retort-mock
retort="$repo/target/release/retort"
mock="$repo/target/release/retort-mock"

# --- CPU placement ------------------------------------------------------------------------
cpus=$(nproc)
if [ "$cpus" -ge 2 ]; then
  server_cpus="0"
  client_cpus="1"
  [ "$cpus" -gt 2 ] && client_cpus="1-$((cpus - 1))"
  server_threads=1
else
  server_cpus="0"
  client_cpus="0"
  server_threads=1
fi

mkdir -p "$work"
work="$(cd "$work" && pwd)"
meas="$work/measurements"
rm -rf "$meas"
mkdir -p "$meas"

seeds() { # seeds N -> path of a JSONL file with N records {"i": k, "topic": "topic k"}
  local path="$work/seeds-$1.jsonl"
  if [ ! -s "$path" ]; then
    awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++) printf "{\"i\":%d,\"topic\":\"topic %d\"}\n", i, i }' > "$path"
  fi
  echo "$path"
}

mock_pid=""
start_mock() { # start_mock LATENCY_MS -> sets base_url
  stop_mock
  local log_file="$work/mock.out"
  # taskset execs the server, so $! is the server's own pid.
  taskset -c "$server_cpus" "$mock" --port 0 --threads "$server_threads" --latency-ms "$1" --ignore-seed > "$log_file" 2>&1 &
  mock_pid=$!
  for _ in $(seq 1 100); do
    if grep -q "listening on" "$log_file" 2>/dev/null; then break; fi
    sleep 0.05
  done
  base_url="$(sed -n 's/^listening on //p' "$log_file" | head -1)"
  [ -n "$base_url" ] || { echo "bench/run.sh: the mock server did not start: $(cat "$log_file")" >&2; exit 1; }
}
stop_mock() {
  if [ -n "$mock_pid" ]; then
    kill "$mock_pid" 2>/dev/null || true
    wait "$mock_pid" 2>/dev/null || true
    mock_pid=""
  fi
}
trap stop_mock EXIT

measure() { # measure NAME COMMAND...: runs the command on the client CPUs, writes NAME.json
  local name="$1"; shift
  python3 bench/measure.py "$meas/$name.json" -- taskset -c "$client_cpus" "$@"
}

run_wrk() { # run_wrk NAME CONCURRENCY
  local name="$1" concurrency="$2"
  measure "$name" wrk -t 1 -c "$concurrency" -d "${wrk_seconds}s" -s bench/chat.lua "$base_url/chat/completions" \
    > "$work/$name.out" 2>&1
  sed -n 's/^wrk-json //p' "$work/$name.out" > "$meas/$name.wrk.json"
  cat "$work/$name.out" >&2
}

run_retort() { # run_retort NAME SEEDS CONCURRENCY [OUT]
  local name="$1" seeds_file="$2" concurrency="$3" out="${4:-$work/runs/$1}"
  rm -rf "$out"
  measure "$name" "$retort" run bench/pipeline.yaml --out "$out" --base-url "$base_url" --quiet --json \
    --set "steps[0].load.path=$seeds_file" --set "llm.max_concurrency=$concurrency" > "$meas/$name.report.json"
  rows_check "$name" "$out/data.jsonl" "$out/dropped.jsonl" "$out/failed.jsonl"
}

run_distilabel() { # run_distilabel NAME SEEDS CONCURRENCY
  local name="$1" seeds_file="$2" concurrency="$3" out="$work/runs/$1"
  rm -rf "$out"
  mkdir -p "$out"
  # distilabel keeps its logs and cache under the home directory unless told otherwise.
  DISTILABEL_LOG_LEVEL=WARNING measure "$name" "$venv/bin/python" bench/distilabel_pipeline.py --seeds "$seeds_file" \
    --out "$out" --base-url "$base_url" --in-flight "$concurrency" > "$meas/$name.report.json"
  rows_check "$name" "$out/data.jsonl"
}

rows_check() { # rows_check NAME DATA [DROPPED FAILED]: counts rows, writes NAME.rows.json
  local name="$1" data="$2" kept dropped=0 failed=0
  kept=$(wc -l < "$data")
  [ -n "${3:-}" ] && dropped=$(wc -l < "$3")
  [ -n "${4:-}" ] && failed=$(wc -l < "$4")
  printf '{"kept": %d, "dropped": %d, "failed": %d}\n' "$kept" "$dropped" "$failed" > "$meas/$name.rows.json"
}

expected_kept() { # expected_kept RETORT_DATA N: rows retort kept among its first N seeds
  python3 -c 'import json,sys; n=int(sys.argv[2]); print(sum(1 for line in open(sys.argv[1]) if json.loads(line)["i"] < n))' "$1" "$2"
}

load_average() { cut -d' ' -f1-3 /proc/loadavg; }
echo "{\"scenario_load\": {}}" > /dev/null
# The commit measured (the report may be written later, from these files).
{ git rev-parse --short HEAD; git status --porcelain --untracked-files=no | head -1; } > "$meas/commit.txt" 2>/dev/null || true
loads="$meas/loads.tsv"
: > "$loads"
note_load() { printf '%s\t%s\n' "$1" "$(load_average)" >> "$loads"; }

# --- Scenario (a): instant server, overhead-bound -------------------------------------------
if has a; then
  log "scenario (a): N=$n_a, instant server, $c_a in flight"
  start_mock 0
  note_load a
  run_wrk a_wrk "$c_a"
  run_retort a_retort "$(seeds "$n_a")" "$c_a"
  if [ "$distilabel" = 1 ]; then
    run_distilabel a_distilabel "$(seeds "$dn_a")" "$c_a"
    expected_kept "$work/runs/a_retort/data.jsonl" "$dn_a" > "$meas/a_distilabel.expected"
  fi
  note_load a-end
fi

# --- Scenario (b): 200 ms per request, latency-bound ---------------------------------------
if has b; then
  log "scenario (b): N=$n_b, ${latency_b} ms per request, $c_b in flight"
  start_mock "$latency_b"
  note_load b
  run_wrk b_wrk "$c_b"
  run_retort b_retort "$(seeds "$n_b")" "$c_b"
  if [ "$distilabel" = 1 ]; then
    run_distilabel b_distilabel "$(seeds "$dn_b")" "$c_b"
    expected_kept "$work/runs/b_retort/data.jsonl" "$dn_b" > "$meas/b_distilabel.expected"
  fi
  note_load b-end
fi

# --- Scenario (c): retort alone, 1M records: flat memory, instant resume -------------------
if has c; then
  small=$((n_c / 10))
  log "scenario (c): retort alone, N=$small and N=$n_c, then the completed $n_c run again"
  start_mock 0
  note_load c
  run_retort c_retort_small "$(seeds "$small")" "$c_a"
  run_retort c_retort "$(seeds "$n_c")" "$c_a"
  # The same command again on the completed run directory: must be a no-op.
  measure c_resume "$retort" run bench/pipeline.yaml --out "$work/runs/c_retort" --base-url "$base_url" --quiet --json \
    --set "steps[0].load.path=$(seeds "$n_c")" --set "llm.max_concurrency=$c_a" > "$meas/c_resume.report.json"
  note_load c-end
fi
stop_mock

# --- The report ------------------------------------------------------------------------------
python3 bench/report.py --measurements "$meas" --results "$results" --command "$command_line" \
  --scenarios "$scenarios" --n-a "$n_a" --distilabel-n-a "$dn_a" --n-b "$n_b" --distilabel-n-b "$dn_b" --n-c "$n_c" \
  --concurrency-a "$c_a" --concurrency-b "$c_b" --latency-b "$latency_b" --wrk-seconds "$wrk_seconds" \
  --server-cpus "$server_cpus" --client-cpus "$client_cpus" --venv "$venv" --distilabel "$distilabel"
log "wrote $results"
