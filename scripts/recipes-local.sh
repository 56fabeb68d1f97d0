#!/usr/bin/env bash
# Runs every built-in recipe end to end on the in-process local model (SmolLM2-135M through
# llama.cpp) with a small --limit, checks that every file it wrote has the shape its export
# declares, and prints one line per recipe: seconds, rows per output file, failed, dropped,
# whether the shapes hold. Runs go to runs/local/NAME (fresh each time unless --resume).
#
#   scripts/recipes-local.sh                 # every built-in recipe
#   scripts/recipes-local.sh spag zerogen    # some of them
#   scripts/recipes-local.sh --resume ...    # keep earlier run directories (answers are reused)
#   RETORT_LOCAL_THREADS=1 scripts/...       # llama.cpp threads for every model of the recipe
#
# On a machine busy with other work, llama.cpp's default (a thread per core, spinning at each
# step) slows down many times over; one thread keeps going.
#
# Exit status: 0 when every run completed and every shape held, 1 otherwise.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

resume=0
names=()
for arg in "$@"; do
  case "$arg" in
    --resume) resume=1 ;;
    *) names+=("$arg") ;;
  esac
done

# The same flags as scripts/main.sh, so the two share one release build.
RUSTFLAGS="${RUSTFLAGS:-} $("$repo"/scripts/cpu-flags.sh)" cargo build --release --locked -p retort-cli
retort="$repo/target/release/retort"
if [ ${#names[@]} -eq 0 ]; then
  mapfile -t names < <("$retort" recipes | cut -f1)
fi

# The smallest --limit that exercises each recipe: one seed record fans out into several
# samples, pairs or dialogues in most recipes, so 2 seeds (1 for the heaviest) are enough.
limit_for() {
  case "$1" in
    auto-evol-instruct) echo 1 ;;   # one seed: the method being optimised
    camel | self-talk) echo 1 ;;    # one role or workflow already makes 2-3 multi-turn dialogues
    voyager) echo 1 ;;              # one agent, a lifetime of iterations
    spa) echo 10 ;;                 # its first 8 prompts are the labelled seed of the DPO stage
    *) echo 2 ;;
  esac
}

# More settings where the recipe's own would make a local run long: Self-Instruct bootstraps
# until 100 new instructions exist (20 still takes it through two rounds); Auto Evol-Instruct's
# final method evolves all 40 seed instructions (6 here); CAMEL talks through 3 ideas per role
# pair (1 here); Voyager's agent lives 40 iterations (3 here).
args_for() {
  case "$1" in
    auto-evol-instruct) echo "--set steps[4].sample.k=6" ;;
    camel) echo "--set vars.ideas_per_pair=1" ;;
    self-instruct) echo "--set steps[2].repeat.until=total>=20" ;;
    voyager) echo "--set vars.iterations=3" ;;
    *) echo "" ;;
  esac
}

# `--set` for the llama.cpp threads of the recipe's `llm:` and of every entry of its `llms:`.
threads_args() {
  [ -n "${RETORT_LOCAL_THREADS:-}" ] || return 0
  local role
  for role in llm $(awk '/^llms:/ {inside = 1; next} /^[^ #]/ {inside = 0} inside && /^  [A-Za-z0-9_-]+:/ {sub(/:.*/, ""); gsub(/ /, ""); print "llms." $0}' "recipes/$1/recipe.yaml"); do
    echo "--set $role.threads=$RETORT_LOCAL_THREADS --set $role.batch_threads=$RETORT_LOCAL_THREADS"
  done
}

root="runs/local"
mkdir -p "$root"
for name in "${names[@]}"; do
  out="$root/$name"
  if [ "$resume" -eq 0 ]; then
    rm -rf "$out"
  fi
  mkdir -p "$out"
  limit="$(limit_for "$name")"
  read -r -a extra <<<"$(args_for "$name")"
  read -r -a threads <<<"$(threads_args "$name" | tr '\n' ' ')"
  echo "== $name --limit $limit ${extra[*]}" >&2
  start="$(date +%s.%N)"
  set +e
  "$retort" run "$name" --out "$out" --backend local --limit "$limit" --json --quiet "${extra[@]}" "${threads[@]}" \
    >"$out.report.new" 2>"$out.log"
  code=$?
  set -e
  end="$(date +%s.%N)"
  # A resumed run that had already completed did nothing: keep the timing of the run that did the work.
  if [ "$code" -eq 0 ] && grep -q '"outcome": "up_to_date"' "$out.report.new" && [ -f "$out.meta.json" ]; then
    rm -f "$out.report.new"
    continue
  fi
  mv "$out.report.new" "$out.report.json"
  RETORT_META="$code $start $end $limit ${extra[*]}" python3 -c '
import json, os, sys
code, start, end, limit, *extra = os.environ["RETORT_META"].split()
json.dump({"exit": int(code), "seconds": float(end) - float(start), "limit": int(limit), "args": " ".join(extra)}, sys.stdout)' >"$out.meta.json"
done

# Check and tabulate.
python3 - "$root" "${names[@]}" <<'PY'
import json, os, re, sys

root, names = sys.argv[1], sys.argv[2:]

def read_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]

def declared(run):
    """(file stem, shape) of every export, from the dataset card's file table."""
    card = os.path.join(run, "README.md")
    if not os.path.exists(card):
        return []
    found = []
    for match in re.finditer(r"^\| (\S+)\.jsonl \| (\w+) \| \d+ \|$", open(card).read(), re.M):
        found.append((match.group(1), match.group(2)))
    return found

def is_text(value):
    return isinstance(value, str)

def shape_problem(shape, stem, row):
    if shape == "sft":
        messages = row.get("messages")
        if not isinstance(messages, list) or not messages:
            return "no messages list"
        for message in messages:
            if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant") or not is_text(message.get("content")):
                return f"a message is not {{role, content}}: {message!r}"[:200]
        if messages[-1]["role"] != "assistant":
            return "the last message is not the assistant's"
    elif shape == "dpo":
        for key in ("prompt", "chosen", "rejected"):
            if not is_text(row.get(key)):
                return f"`{key}` is not text"
    if stem == "episodes":
        episode = row.get("episode")
        if not isinstance(episode, dict) or not isinstance(episode.get("turns"), list) or not row.get("outcome"):
            return "an episode without turns or outcome"
    return None

lines = []
all_ok = True
for name in names:
    run = os.path.join(root, name)
    meta = json.load(open(run + ".meta.json"))
    try:
        report = json.load(open(run + ".report.json"))
    except (OSError, ValueError):
        report = None
    problems = []
    if meta["exit"] != 0 or report is None:
        log = open(run + ".log").read().strip().splitlines()
        problems.append(f"exit {meta['exit']}: {log[-1] if log else ''}"[:160])
    elif report.get("outcome") != "completed":
        problems.append(f"outcome {report.get('outcome')}")
    counts = []
    for stem, shape in declared(run):
        rows = read_jsonl(os.path.join(run, stem + ".jsonl"))
        counts.append(f"{stem} {len(rows)}")
        for row in rows:
            problem = shape_problem(shape, stem, row)
            if problem:
                problems.append(f"{stem}.jsonl ({shape}): {problem}")
                break
    failed = read_jsonl(os.path.join(run, "failed.jsonl"))
    dropped = read_jsonl(os.path.join(run, "dropped.jsonl"))
    for kind, rows in (("failed", failed), ("dropped", dropped)):
        if any(not str(row.get("reason") or "").strip() for row in rows):
            problems.append(f"a {kind} row without a reason")
    ok = not problems
    all_ok &= ok
    settings = f"--limit {meta['limit']}" + (f" {meta['args']}" if meta.get("args") else "")
    lines.append((name, settings, meta["seconds"], ", ".join(counts) or "-", len(failed), len(dropped), "yes" if ok else "NO: " + "; ".join(problems)))

header = "| recipe | settings | seconds | rows per output file | failed | dropped | shape ok |"
table = [header, "|---|---|---|---|---|---|---|"]
table += [f"| `{name}` | `{limit}` | {seconds:.0f} | {counts} | {failed} | {dropped} | {ok} |" for name, limit, seconds, counts, failed, dropped, ok in lines]
print("\n".join(table))
with open(os.path.join(root, "table.md"), "w") as handle:
    handle.write("\n".join(table) + "\n")
sys.exit(0 if all_ok else 1)
PY
