"""Writes bench/RESULTS.md from the measurements bench/run.sh took.

Each measured command left NAME.json (wall, CPU seconds, peak RSS), and beside it what the
tool itself reported: NAME.wrk.json (wrk's request count), NAME.report.json (the engine's own
report), NAME.rows.json (rows in the output files). The hand-written part of the report (how
to read it, the engine changes with their before/after figures) is bench/notes.md, appended.
"""

import argparse
import json
import os
import platform
import re
import subprocess
from typing import Optional


def read(path: str):
    try:
        with open(path) as file:
            text = file.read().strip()
        return json.loads(text) if text.startswith(("{", "[")) else text
    except (OSError, ValueError):
        return None


def output(command: list) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def memory_gib() -> float:
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def fmt(value: Optional[float], digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def ratio(numerator: Optional[float], denominator: Optional[float]) -> Optional[float]:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


class Row:
    """One engine in one scenario."""

    def __init__(self, meas: str, name: str, engine: str, seeds: Optional[int]):
        self.name, self.engine, self.seeds = name, engine, seeds
        self.measured = read(os.path.join(meas, f"{name}.json")) or {}
        self.report = read(os.path.join(meas, f"{name}.report.json"))
        self.rows = read(os.path.join(meas, f"{name}.rows.json")) or {}
        self.expected = read(os.path.join(meas, f"{name}.expected"))
        wrk = read(os.path.join(meas, f"{name}.wrk.json"))
        self.wall = self.measured.get("wall_s")
        self.requests = None
        if engine == "wrk" and isinstance(wrk, dict):
            self.requests = wrk["requests"]
            self.wall = wrk["duration_us"] / 1e6
            self.errors = wrk["errors"] + wrk["non200"]
        elif engine == "retort" and isinstance(self.report, dict):
            self.requests = sum(step.get("requests", 0) for step in self.report.get("steps", []))
        elif engine == "distilabel" and seeds is not None:
            self.requests = 2 * seeds
        self.present = bool(self.measured) and self.wall is not None

    @property
    def records_per_s(self) -> Optional[float]:
        if self.engine == "wrk":
            return None
        return ratio(self.seeds, self.wall)

    @property
    def requests_per_s(self) -> Optional[float]:
        return ratio(self.requests, self.wall)

    @property
    def rss(self) -> Optional[float]:
        return self.measured.get("peak_rss_mb")

    @property
    def cpu(self) -> Optional[float]:
        return self.measured.get("cpu_s")

    def cpu_ms_per_request(self) -> Optional[float]:
        value = ratio(self.cpu, self.requests)
        return None if value is None else value * 1000

    def rows_text(self) -> str:
        if self.engine == "wrk":
            return f"{self.requests:,} requests, {self.errors} errors" if self.requests is not None else "–"
        kept = self.rows.get("kept")
        if kept is None:
            return "–"
        text = f"{kept:,} kept"
        if self.rows.get("dropped") or self.rows.get("failed") is not None and self.engine == "retort":
            text += f", {self.rows.get('dropped', 0):,} dropped, {self.rows.get('failed', 0):,} failed"
        if self.expected is not None:
            mark = "✓" if str(self.expected) == str(kept) else "✗"
            text += f" (retort kept {int(self.expected):,} of the same seeds {mark})"
        return text


def table(rows: list) -> list:
    lines = [
        "| engine | seeds | wall s | records/s | requests/s | peak RSS MB | CPU s | CPU ms/request | output |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        if not row.present:
            continue
        seeds = "–" if row.seeds is None else f"{row.seeds:,}"
        lines.append(
            f"| {row.engine} | {seeds} | {fmt(row.wall, 1)} | {fmt(row.records_per_s)} | {fmt(row.requests_per_s)} "
            f"| {fmt(row.rss, 1)} | {fmt(row.cpu, 1)} | {fmt(row.cpu_ms_per_request(), 3)} | {row.rows_text()} |"
        )
    return lines


def verdict(ok: Optional[bool]) -> str:
    return {True: "**holds**", False: "**does not hold**", None: "not measured"}[ok]


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ["measurements", "results", "command", "scenarios", "server-cpus", "client-cpus", "venv"]:
        parser.add_argument(f"--{name}", required=True)
    for name in ["n-a", "distilabel-n-a", "n-b", "distilabel-n-b", "n-c", "concurrency-a", "concurrency-b",
                 "latency-b", "wrk-seconds", "distilabel"]:
        parser.add_argument(f"--{name}", type=int, required=True)
    args = parser.parse_args()
    meas = args.measurements
    scenarios = set(args.scenarios.split(","))

    a = [Row(meas, "a_wrk", "wrk", None), Row(meas, "a_retort", "retort", args.n_a),
         Row(meas, "a_distilabel", "distilabel", args.distilabel_n_a)]
    b = [Row(meas, "b_wrk", "wrk", None), Row(meas, "b_retort", "retort", args.n_b),
         Row(meas, "b_distilabel", "distilabel", args.distilabel_n_b)]
    c_small = Row(meas, "c_retort_small", "retort", args.n_c // 10)
    c_large = Row(meas, "c_retort", "retort", args.n_c)
    c_resume = Row(meas, "c_resume", "retort", args.n_c)

    retort_version = output(["target/release/retort", "--version"])
    recorded = read(os.path.join(meas, "commit.txt"))
    if isinstance(recorded, str) and recorded:
        commit, _, dirty = recorded.partition("\n")
    else:
        commit = output(["git", "rev-parse", "--short", "HEAD"])
        dirty = output(["git", "status", "--porcelain", "--untracked-files=no"])
    python = os.path.join(args.venv, "bin", "python")
    distilabel_version = output([python, "-c", "import distilabel, openai; print(distilabel.__version__, openai.__version__)"]).split()
    wrk_version = output(["sh", "-c", "wrk -v 2>&1 | head -1"])
    loads = read(os.path.join(meas, "loads.tsv")) or ""

    lines = ["# Benchmark results", ""]
    lines += [
        "Written by `bench/run.sh` (do not edit by hand: the notes at the end come from `bench/notes.md`).",
        "",
        f"- **command**: `{args.command}`",
        f"- **machine**: {cpu_model()}, {os.cpu_count()} CPUs, {memory_gib():.0f} GiB, {platform.system()} {platform.release()}",
        f"- **placement**: server (retort-mock, 1 worker thread) on CPU {args.server_cpus}; every client (wrk, retort, distilabel) on CPU {args.client_cpus}",
        f"- **versions**: {retort_version} (commit {commit}{', with local changes' if dirty else ''}); "
        + (f"distilabel {distilabel_version[0]} with openai {distilabel_version[1]}; " if len(distilabel_version) == 2 else "")
        + f"{wrk_version}; {output(['rustc', '--version'])}; Python {platform.python_version()}",
        "- **load average** (1, 5, 15 min) at the start and end of each scenario: "
        + "; ".join(f"{part.split(chr(9))[0]}: {part.split(chr(9))[1]}" for part in loads.splitlines() if "\t" in part),
        "",
        "Every engine runs the same pipeline against the same server: load N seed records → generate (one chat "
        "request) → judge (one chat request, `Score: N` parsed from the answer) → keep records with score ≥ 2 → "
        "export JSONL. The server answers from the conversation alone (`retort-mock --ignore-seed`), so both engines "
        "get the same answers and must keep the same rows. The raw load generator (wrk) posts the same request bodies "
        "with the same number of connections. records/s = seeds / wall time of the whole process (start-up "
        "included); requests/s = chat requests / wall time (2 per record for the engines).",
        "",
    ]

    summary = []
    if "a" in scenarios:
        wrk, retort, distil = a
        speedup = ratio(retort.records_per_s, distil.records_per_s)
        of_raw = ratio(retort.requests_per_s, wrk.requests_per_s)
        memory = ratio(distil.rss, retort.rss)
        lines += [f"## (a) Overhead-bound: N = {args.n_a:,}, instant server, {args.concurrency_a} requests in flight", ""]
        lines += table(a)
        lines += [""]
        if distil.present and args.distilabel_n_a != args.n_a:
            lines += [f"distilabel ran {args.distilabel_n_a:,} of the {args.n_a:,} seeds (`--distilabel-n-a`): at its rate "
                      f"all of them would take {fmt(ratio(args.n_a, distil.records_per_s) and args.n_a / distil.records_per_s / 60, 0)} "
                      "minutes. Rates are compared, not totals.", ""]
        lines += [
            f"- retort / distilabel, records/s: **{fmt(speedup, 1)}×** (target ≥ 20×: {verdict(None if speedup is None else speedup >= 20)})",
            f"- retort / raw load (wrk), requests/s: **{fmt(of_raw, 2)}×** (target ≥ 0.9×: {verdict(None if of_raw is None else of_raw >= 0.9)})",
            f"- peak memory, distilabel / retort: **{fmt(memory, 1)}×** (target ≥ 5×: {verdict(None if memory is None else memory >= 5)})",
            "",
        ]
        summary += [("(a) retort / distilabel, records/s", f"{fmt(speedup, 1)}×"),
                    ("(a) retort / raw load, requests/s", f"{fmt(of_raw, 2)}×"),
                    ("(a) peak RSS, retort vs distilabel", f"{fmt(retort.rss, 0)} MB vs {fmt(distil.rss, 0)} MB")]
    if "b" in scenarios:
        wrk, retort, distil = b
        ideal = args.concurrency_b / (args.latency_b / 1000)
        lines += [f"## (b) Latency-bound: N = {args.n_b:,}, {args.latency_b} ms per request, {args.concurrency_b} requests in flight", ""]
        lines += table(b)
        lines += [
            "",
            f"The ideal is concurrency / latency = {args.concurrency_b} / {args.latency_b / 1000:g} s = **{ideal:,.0f} requests/s** "
            f"({ideal / 2:,.0f} records/s).",
            "",
        ]
        for row in b:
            if row.present and row.requests_per_s:
                lines.append(f"- {row.engine}: {row.requests_per_s / ideal * 100:.1f}% of the ideal")
        share = ratio(b[1].requests_per_s, ideal)
        lines += ["", f"Target: retort within 5% of the ideal: {verdict(None if share is None else share >= 0.95)}"
                  + (f" ({share * 100:.1f}%)" if share else ""), ""]
        summary += [("(b) retort, share of the ideal rate", f"{fmt(share and share * 100, 1)}%"),
                    ("(b) distilabel, share of the ideal rate", f"{fmt(ratio(distil.requests_per_s, ideal) and ratio(distil.requests_per_s, ideal) * 100, 1)}%")]
    if "c" in scenarios:
        report = c_resume.report if isinstance(c_resume.report, dict) else {}
        resume_requests = sum(step.get("requests", 0) for step in report.get("steps", [])) if report.get("outcome") != "up_to_date" else 0
        lines += [f"## (c) retort alone: N = {args.n_c // 10:,} and {args.n_c:,}; then the completed run again", ""]
        lines += table([c_small, c_large])
        growth = ratio(c_large.rss, c_small.rss)
        lines += [
            "",
            f"- peak RSS at {args.n_c // 10:,} seeds: {fmt(c_small.rss, 1)} MB; at {args.n_c:,}: {fmt(c_large.rss, 1)} MB "
            f"({fmt(growth, 2)}× for 10× the records). The run store's SQLite page cache is bounded at 16 MB per connection.",
            f"- the same command again on the completed {args.n_c:,}-record run: **{fmt(c_resume.wall, 2)} s**, "
            f"{fmt(c_resume.rss, 1)} MB, outcome `{report.get('outcome', '–')}`, {resume_requests} requests sent.",
            "",
        ]
        summary += [(f"(c) peak RSS at {args.n_c // 10:,} → {args.n_c:,} records", f"{fmt(c_small.rss, 0)} MB → {fmt(c_large.rss, 0)} MB"),
                    (f"(c) re-running the completed {args.n_c:,}-record run", f"{fmt(c_resume.wall, 2)} s")]
    lines[2:2] = ["| headline | figure |", "|---|---|"] + [f"| {name} | {value} |" for name, value in summary] + [""]

    notes_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "notes.md")
    if os.path.exists(notes_path):
        with open(notes_path) as file:
            lines += [file.read().rstrip(), ""]
    # The local model's section is written by bench/local.sh; keep it.
    if os.path.exists(args.results):
        with open(args.results) as file:
            previous = file.read()
        start, end = previous.find(LOCAL_START), previous.find(LOCAL_END)
        if start >= 0 and end > start:
            lines += [previous[start:end + len(LOCAL_END)], ""]
    os.makedirs(os.path.dirname(os.path.abspath(args.results)), exist_ok=True)
    with open(args.results, "w") as file:
        file.write("\n".join(lines).rstrip() + "\n")


# The markers around the section bench/local.sh writes into the same file.
LOCAL_START = "<!-- bench/local.sh: start -->"
LOCAL_END = "<!-- bench/local.sh: end -->"


if __name__ == "__main__":
    main()
