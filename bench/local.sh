#!/usr/bin/env bash
# The local model benchmark: retort's in-process backend against llama.cpp's own server on the
# same model file, threads and parallel sequences, side by side in one run. Writes its section
# of bench/RESULTS.md (bench/local_report.py; bench/run.sh keeps the section).
#
#   bench/local.sh                 # both workloads, every engine (about 35 minutes on 2 CPUs;
#                                  # the first time 10-20 more to build llama-server)
#   bench/local.sh --workloads fewshot
#   bench/local.sh --engines llama-server,local   # skip the scheduler without the cache
#
# Workloads (bench/local/):
#   self-consistency  24 topics: a question (64 tokens), an answer (96), then 8 samples of one
#                     prompt (n: 8, 96 tokens each) at temperature 0.7
#   fewshot           60 GSM8K questions behind the same ~600-token few-shot prompt, short
#                     greedy answers (48 tokens)
#
# Engines, each running the same recipe with 8 sequences (slots) and 2 threads:
#   retort local           backend: local (prefix cache on, the default)
#   retort local, no cache backend: local with prefix_cache: false (the scheduler before it)
#   retort local, row dot  backend: local with RETORT_GGML_Q4_1_GEMM=0: llama.cpp's own
#                          row-at-a-time Q4_1 product instead of retort's tiled kernel
#                          (crates/retort-llama/ggml/q4_1_gemm.cpp)
#   llama-server           retort's OpenAI backend (max_concurrency 8) against `llama-server
#                          -np 8 -c 16384 -t 2`, built from the llama.cpp sources vendored by the
#                          llama-cpp-python 0.3.36 source distribution (pinned below)
#
# Prompt tokens evaluated: retort counts them itself (prompt tokens minus those reused from its
# cache); llama-server's are read from its /metrics (llamacpp:prompt_tokens_total, which
# counts the tokens it evaluated, not those it took from a slot's cache).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

workloads="self-consistency,fewshot"
engines="llama-server,local,local-nocache,local-rowdot"
work="target/bench/local"
results="bench/RESULTS.md"
threads=2
slots=8
port=18300
llama_python_version="0.3.36"
while [ $# -gt 0 ]; do
  case "$1" in
    --workloads) workloads="$2"; shift 2 ;;
    --engines) engines="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --results) results="$2"; shift 2 ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "bench/local.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
mkdir -p "$work"
work="$(cd "$work" && pwd)"

scripts/setup.sh >/dev/null
echo "== building retort (release, native CPU)"
RUSTFLAGS="$("$repo"/scripts/cpu-flags.sh)" cargo build --release --locked -p retort-cli >/dev/null
retort="$repo/target/release/retort"
model="$repo/models/smollm2-135m-instruct.q4_1.gguf"

src="$work/src"
llama="$src/llama_cpp_python-$llama_python_version/vendor/llama.cpp"
server="$llama/build/bin/llama-server"
if [ ! -x "$server" ]; then
  echo "== building llama-server from llama-cpp-python $llama_python_version's vendored llama.cpp (once; about 20 minutes on 2 CPUs)"
  mkdir -p "$src"
  if [ ! -d "$src/llama_cpp_python-$llama_python_version" ]; then
    python3 -m pip download "llama-cpp-python==$llama_python_version" --no-deps --no-binary :all: -d "$src" -q
    tar -xzf "$src/llama_cpp_python-$llama_python_version.tar.gz" -C "$src"
  fi
  # llama.cpp's own defaults otherwise (Release, OpenMP on where the compiler has it).
  cmake -S "$llama" -B "$llama/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >/dev/null
  cmake --build "$llama/build" --target llama-server -j "$(nproc)" >/dev/null
fi

metric() { # metric NAME: a counter of llama-server's /metrics
  curl -s "http://127.0.0.1:$port/metrics" | awk -v name="$1" '$1 == name { print $2 }'
}

# run ENGINE WORKLOAD: one measured run; appends a JSON line to $work/measurements.jsonl.
run() {
  local engine="$1" workload="$2"
  local out="$work/runs/$workload-$engine"
  rm -rf "$out"
  local args=(run "bench/local/$workload.yaml" --out "$out" --json --quiet)
  local environment=()
  case "$engine" in
    local) args+=(--set "llm.max_sequences=$slots" --set "llm.threads=$threads") ;;
    local-nocache) args+=(--set "llm.max_sequences=$slots" --set "llm.threads=$threads" --set llm.prefix_cache=false) ;;
    local-rowdot) args+=(--set "llm.max_sequences=$slots" --set "llm.threads=$threads"); environment=(RETORT_GGML_Q4_1_GEMM=0) ;;
    llama-server) args+=(--base-url "http://127.0.0.1:$port/v1" --model smollm2 --set "llm.max_concurrency=$slots") ;;
  esac
  local before_prompt=0 before_predicted=0
  if [ "$engine" = llama-server ]; then
    before_prompt="$(metric llamacpp:prompt_tokens_total)"
    before_predicted="$(metric llamacpp:tokens_predicted_total)"
  fi
  local start end
  start="$(date +%s.%N)"
  env "${environment[@]}" "$retort" "${args[@]}" >"$work/report.json"
  end="$(date +%s.%N)"
  local server_prompt=null server_predicted=null
  if [ "$engine" = llama-server ]; then
    server_prompt="$(python3 -c "print(int(float('$(metric llamacpp:prompt_tokens_total)') - float('$before_prompt')))")"
    server_predicted="$(python3 -c "print(int(float('$(metric llamacpp:tokens_predicted_total)') - float('$before_predicted')))")"
  fi
  python3 - "$engine" "$workload" "$start" "$end" "$server_prompt" "$server_predicted" "$work/report.json" >>"$work/measurements.jsonl" <<'EOF'
import json, sys
engine, workload, start, end, server_prompt, server_predicted, report = sys.argv[1:]
report = json.load(open(report))
steps = report["steps"]
prompt = sum(step["prompt_tokens"] for step in steps)
cached = sum(step.get("prompt_tokens_cached", 0) for step in steps)
completion = sum(step["completion_tokens"] for step in steps)
wall = float(end) - float(start)
evaluated = int(server_prompt) if server_prompt != "null" else prompt - cached
generated = int(server_predicted) if server_predicted != "null" else completion
print(json.dumps({
    "engine": engine, "workload": workload, "wall_s": round(wall, 2),
    "answers": sum(step["out"] for step in steps if step["kind"] == "generate"),
    "requests": sum(step["requests"] for step in steps),
    "failed": sum(step["failed"] for step in steps),
    "prompt_tokens": prompt, "prompt_evaluated": evaluated, "generated": generated,
    "tokens_per_s": round(generated / wall, 1),
}))
EOF
  tail -1 "$work/measurements.jsonl"
}

rm -f "$work/measurements.jsonl"
"$retort" --version >/dev/null
echo "== starting llama-server (-np $slots -c $((slots * 2048)) -t $threads)"
"$server" -m "$model" -np "$slots" -c "$((slots * 2048))" -t "$threads" -tb "$threads" --port "$port" --metrics \
  --no-webui >"$work/llama-server.log" 2>&1 &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 0.5
done
IFS=',' read -ra chosen <<<"$workloads"
for workload in "${chosen[@]}"; do
  echo "== $workload"
  # Alternate the engines so that a drift of the machine's speed falls on all of them.
  for engine in llama-server local local-nocache local-rowdot; do
    case ",$engines," in *",$engine,"*) run "$engine" "$workload" ;; esac
  done
done
kill $server_pid 2>/dev/null || true

python3 bench/local_report.py --measurements "$work/measurements.jsonl" --results "$results" \
  --command "bench/local.sh --workloads $workloads --engines $engines" \
  --machine "$(nproc) CPUs, $("$retort" --version) at commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' with local changes')"
