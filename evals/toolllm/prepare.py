"""Writes the ToolBench data of the toolllm recipe and its evaluation from ../shared/data.

recipes/toolllm/data/tools.jsonl   one line per tool of the DRAFT ToolBench test sets (G2, G3):
                                   category, tool name, at most 3 of its APIs (ToolBench's entries)
recipes/toolllm/data/examples.jsonl  ToolBench's G2 example queries, as in-context examples
evals/toolllm/data/g2.jsonl        the first LIMIT G2 test queries (query, api_list, relevant APIs),
                                   with the original API descriptions (api_list) and DRAFT's revised ones (api_list_draft)

Usage: python3 evals/toolllm/prepare.py [LIMIT]   (default 40)
"""
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
repo = os.path.dirname(os.path.dirname(here))
shared = os.path.join(os.path.dirname(repo), "shared", "data")
limit = int(sys.argv[1]) if len(sys.argv) > 1 else 40

draft_dir = os.path.join(shared, "toolbench_draft")
tests = {g: json.load(open(os.path.join(draft_dir, "test_data", f"{g}.json"))) for g in ("G2", "G3")}
initial = json.load(open(os.path.join(draft_dir, "tool_instruction", "Initial.json")))
revised = json.load(open(os.path.join(draft_dir, "tool_instruction", "DRAFT.json")))
docs = {}
for source, name in ((initial, "initial"), (revised, "draft")):
    for tool in source.values():
        for api_name, api in tool.get("tool_guidelines", {}).items():
            docs.setdefault((tool["tool_name"], api_name), {})[name] = api

# The tool pool: every tool of the test sets, its APIs in first-seen order, at most 3 each.
tools = {}
for group in ("G2", "G3"):
    for query in tests[group]:
        for api in query["api_list"]:
            tool = tools.setdefault(api["tool_name"], {"category": api["category_name"], "tool_name": api["tool_name"], "apis": []})
            if len(tool["apis"]) < 3 and all(a["api_name"] != api["api_name"] for a in tool["apis"]):
                tool["apis"].append(api)
with open(os.path.join(repo, "recipes", "toolllm", "data", "tools.jsonl"), "w") as out:
    for tool in sorted(tools.values(), key=lambda t: (t["category"], t["tool_name"])):
        out.write(json.dumps(tool, ensure_ascii=False) + "\n")

examples = json.load(open(os.path.join(shared, "toolbench", "instruction", "G2_query.json")))
with open(os.path.join(repo, "recipes", "toolllm", "data", "examples.jsonl"), "w") as out:
    for example in examples:
        apis = [{"tool_name": a["tool_name"], "api_name": a["api_name"], "api_description": a["api_description"]} for a in example["api_list"]]
        out.write(json.dumps({"apis": apis, "query": example["query"], "relevant_apis": example["relevant APIs"]}, ensure_ascii=False) + "\n")

with open(os.path.join(here, "data", "g2.jsonl"), "w") as out:
    for query in tests["G2"][:limit]:
        revised_list = []
        for api in query["api_list"]:
            api = dict(api)
            found = docs.get((api["tool_name"], api["api_name"]), {})
            api["api_description"] = found.get("draft", {}).get("description", api["api_description"])
            revised_list.append(api)
        out.write(json.dumps({"query_id": query["query_id"], "query": query["query"], "api_list": query["api_list"],
                              "api_list_draft": revised_list, "relevant": query["relevant APIs"]}, ensure_ascii=False) + "\n")
print(f"{len(tools)} tools, {len(examples)} examples, {min(limit, len(tests['G2']))} G2 queries")
