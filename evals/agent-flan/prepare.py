"""Writes the agent-flan recipe's default input from ToolBench's released DFS answers.

recipes/agent-flan/data/trajectories.jsonl: one line per valid answer of
../shared/data/toolbench/answer/ (G1, G2, G3): query, functions (OpenAI specs), and the
trajectory as the toolllm recipe writes it (steps of thought, action, arguments, observation;
final_answer). ToolBench's system prompt is left out. The toolllm recipe's records.jsonl has
the same fields and can replace this file.

Usage: python3 evals/agent-flan/prepare.py
"""
import glob
import json
import os

here = os.path.dirname(os.path.abspath(__file__))
repo = os.path.dirname(os.path.dirname(here))
answers = sorted(glob.glob(os.path.join(os.path.dirname(repo), "shared", "data", "toolbench", "answer", "*", "*.json")))
rows = 0
with open(os.path.join(repo, "recipes", "agent-flan", "data", "trajectories.jsonl"), "w") as out:
    for path in answers:
        generation = json.load(open(path))["answer_generation"]
        if not generation.get("valid_data") or generation.get("finish_type") != "give_answer":
            continue
        messages = generation["train_messages"][-1]
        steps, final_answer = [], None
        for index, message in enumerate(messages):
            if message["role"] != "assistant" or not message.get("function_call"):
                continue
            call = message["function_call"]
            try:
                arguments = json.loads(call["arguments"]) if call["arguments"].strip() else {}
            except json.JSONDecodeError:
                arguments = call["arguments"]
            if call["name"] == "Finish":
                final_answer = arguments.get("final_answer") if isinstance(arguments, dict) else None
                steps.append({"thought": message.get("content") or "", "action": "Finish", "arguments": arguments, "observation": ""})
                break
            following = messages[index + 1] if index + 1 < len(messages) else {}
            steps.append({"thought": message.get("content") or "", "action": call["name"], "arguments": arguments,
                          "observation": following.get("content", "") if following.get("role") == "function" else ""})
        if final_answer is None:
            continue
        functions = [{"type": "function", "function": f} for f in generation["function"] if f["name"] != "Finish"]
        out.write(json.dumps({"query": generation["query"].strip(), "functions": functions,
                              "trajectory": {"steps": steps, "final_answer": final_answer}}, ensure_ascii=False) + "\n")
        rows += 1
print(f"{rows} trajectories from {len(answers)} answers")
