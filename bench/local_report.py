"""Writes the local model benchmark's section of bench/RESULTS.md from bench/local.sh's measurements.

The section lies between the markers of bench/report.py (which keeps it when bench/run.sh
rewrites the rest of the file); a file without the markers gets the section appended.
"""

import argparse
import json
import os

from report import LOCAL_END, LOCAL_START

NAMES = {
    "llama-server": "llama-server (retort's OpenAI backend)",
    "local": "retort local",
    "local-nocache": "retort local, `prefix_cache: false` (the scheduler before)",
    "local-rowdot": "retort local, llama.cpp's row-at-a-time Q4_1 product (`RETORT_GGML_Q4_1_GEMM=0`)",
}
TARGETS = {"self-consistency": 1.2, "fewshot": 1.5}


def section(rows, command, machine):
    text = [LOCAL_START, "", "## The local model against llama.cpp's server (bench/local.sh)", "",
            f"Written by `{command}`; {machine}. Model SmolLM2-135M-Instruct Q4_1; 8 sequences (slots),",
            "2,048 tokens of context each and 2 threads for every engine; llama-server built from the llama.cpp",
            "that the llama-cpp-python 0.3.36 source distribution vendors (Release, OpenMP, native CPU).", ""]
    headline = []
    for workload in dict.fromkeys(row["workload"] for row in rows):
        by = {row["engine"]: row for row in rows if row["workload"] == workload}
        text += [f"### {workload}", "",
                 "| engine | wall s | answers | failed | generated tokens | tokens/s | prompt tokens | prompt tokens evaluated |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for engine in NAMES:
            row = by.get(engine)
            if row:
                text.append(f"| {NAMES[engine]} | {row['wall_s']} | {row['answers']} | {row['failed']} | {row['generated']:,} | "
                            f"{row['tokens_per_s']} | {row['prompt_tokens']:,} | {row['prompt_evaluated']:,} |")
        text.append("")
        if "local" in by and "llama-server" in by:
            ratio = by["local"]["tokens_per_s"] / by["llama-server"]["tokens_per_s"]
            target = TARGETS.get(workload)
            verdict = "" if target is None else f" (target ≥ {target}×: **{'holds' if ratio >= target else 'does not hold'}**)"
            text.append(f"- retort local / llama-server, generated tokens/s: **{ratio:.2f}×**{verdict}")
            headline.append((f"{workload}: retort local / llama-server, tokens/s", f"{ratio:.2f}×"))
        if "local" in by:
            # Without the cache every prompt token is evaluated: its count is the prompt tokens.
            before = by.get("local-nocache", {}).get("prompt_evaluated", by["local"]["prompt_tokens"])
            share = by["local"]["prompt_evaluated"] / max(1, before)
            text.append(f"- prompt tokens evaluated, with the prefix cache / without: **{share:.3f}** "
                        f"({by['local']['prompt_evaluated']:,} / {before:,}; target for fewshot ≤ 0.2)")
            headline.append((f"{workload}: prompt tokens evaluated, cache / no cache", f"{share:.3f}"))
        if "local" in by and "local-nocache" in by:
            text.append(f"- retort local, wall time without the prefix cache / with it: **{by['local-nocache']['wall_s'] / by['local']['wall_s']:.2f}×**")
        if "local" in by and "local-rowdot" in by:
            text.append(f"- retort local, tokens/s with the tiled Q4_1 kernel / with llama.cpp's row product: "
                        f"**{by['local']['tokens_per_s'] / by['local-rowdot']['tokens_per_s']:.2f}×**")
            if "llama-server" in by:
                text.append(f"- retort local with llama.cpp's row product / llama-server, tokens/s: "
                            f"**{by['local-rowdot']['tokens_per_s'] / by['llama-server']['tokens_per_s']:.2f}×**")
        text.append("")
    text[4:4] = ["| headline | figure |", "|---|---|"] + [f"| {name} | {value} |" for name, value in headline] + [""]
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "local-notes.md")
    if os.path.exists(notes):
        text += ["### How the comparison is set up", "", open(notes).read().strip(), ""]
    return "\n".join(text + [LOCAL_END])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--measurements", required=True)
    parser.add_argument("--results", default="bench/RESULTS.md")
    parser.add_argument("--command", default="bench/local.sh")
    parser.add_argument("--machine", default="")
    args = parser.parse_args()
    rows = [json.loads(line) for line in open(args.measurements)]
    new = section(rows, args.command, args.machine)
    previous = open(args.results).read() if os.path.exists(args.results) else ""
    start, end = previous.find(LOCAL_START), previous.find(LOCAL_END)
    if start >= 0 and end > start:
        text = previous[:start] + new + previous[end + len(LOCAL_END):]
    else:
        text = previous.rstrip() + ("\n\n" if previous else "") + new + "\n"
    with open(args.results, "w") as file:
        file.write(text)
    print(new)


if __name__ == "__main__":
    main()
