"""The benchmark pipeline in distilabel: load seeds -> generate -> judge (score parsed) -> filter -> JSONL.

It does the same work as bench/pipeline.yaml in retort: two chat requests per seed record,
with the same prompts, against the same OpenAI-compatible server.

    python distilabel_pipeline.py --seeds seeds.jsonl --out out/ --base-url http://127.0.0.1:18123/v1 \
        --in-flight 64

distilabel runs each step in its own process and sends the rows of one input batch to the
server at once, waiting for the whole batch before the next. So `input_batch_size` bounds
the requests in flight per model step; with two model steps working at the same time, the
total in flight is up to twice that. `--in-flight C` sets each model step's batch size to
C / 2, so that at most C requests are in flight in all, as retort's `max_concurrency: C`.
"""

import argparse
import json
import os
import re
import sys
import time
from typing import Any, Dict, List, Union

from distilabel.models import OpenAILLM
from distilabel.pipeline import Pipeline
from distilabel.steps import LoadDataFromDicts, StepInput, step
from distilabel.steps.tasks import Task, TextGeneration

GENERATE_PROMPT = "Write one question about {{ topic }}."
JUDGE_PROMPT = "Rate this question from 1 to 5. Reply with Score: N.\n\n{question}"
SCORE = re.compile(r"(?i)(?:score|rating|grade)\W{0,3}(?:of|is|:|=)?\W{0,3}(-?\d+(?:\.\d+)?)")
MIN_SCORE = 2


class Judge(Task):
    """Asks the model to rate the question and parses `Score: N` from its answer."""

    @property
    def inputs(self) -> List[str]:
        return ["question"]

    def format_input(self, input: Dict[str, Any]) -> List[Dict[str, str]]:
        return [{"role": "user", "content": JUDGE_PROMPT.format(question=input["question"])}]

    @property
    def outputs(self) -> List[str]:
        return ["score", "model_name"]

    def format_output(self, output: Union[str, None], input: Union[Dict[str, Any], None] = None) -> Dict[str, Any]:
        found = SCORE.findall(output or "")
        return {"score": float(found[-1]) if found else None}


@step(inputs=["score"])
def KeepScored(inputs: StepInput):
    """Keeps the rows whose score is at least MIN_SCORE (retort: `keep: "score >= 2"`)."""
    yield [row for row in inputs if row.get("score") is not None and row["score"] >= MIN_SCORE]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", required=True, help="JSONL file of seed records with a `topic` field")
    parser.add_argument("--out", required=True, help="directory for data.jsonl and distilabel's cache")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model", default="mock")
    parser.add_argument("--in-flight", type=int, default=64, help="requests in flight in all (C)")
    parser.add_argument("--limit", type=int, default=None, help="read at most this many seeds")
    args = parser.parse_args()

    with open(args.seeds) as file:
        seeds = [json.loads(line) for line in file if line.strip()]
    if args.limit is not None:
        seeds = seeds[: args.limit]
    batch = max(1, args.in_flight // 2)
    os.makedirs(args.out, exist_ok=True)
    llm = lambda: OpenAILLM(
        model=args.model,
        base_url=args.base_url,
        api_key="none",
        max_retries=6,
        timeout=120,
        generation_kwargs={"max_new_tokens": 128},
    )

    started = time.monotonic()
    # A fresh cache directory per run: distilabel would otherwise answer a repeated run from
    # the batches it cached, which is its resume mechanism, not work.
    with Pipeline(name="retort-bench", cache_dir=os.path.join(args.out, "cache")) as pipeline:
        load = LoadDataFromDicts(data=seeds, batch_size=max(batch, 50))
        generate = TextGeneration(
            llm=llm(),
            template=GENERATE_PROMPT,
            columns=["topic"],
            output_mappings={"generation": "question"},
            input_batch_size=batch,
        )
        judge = Judge(llm=llm(), input_batch_size=batch)
        keep = KeepScored(input_batch_size=max(batch, 50))
        load >> generate >> judge >> keep
    distiset = pipeline.run(use_cache=False)
    rows = distiset["default"]["train"]
    path = os.path.join(args.out, "data.jsonl")
    rows.to_json(path, lines=True)
    elapsed = time.monotonic() - started
    print(json.dumps({"seeds": len(seeds), "rows": len(rows), "elapsed_s": elapsed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
