"""Writes the ToolAlpaca data of the toolalpaca recipe and its evaluation from ../shared/data.

recipes/toolalpaca/data/apis.jsonl      the public-apis one-line descriptions (name, description,
                                        category, link), less the APIs of the evaluation sets
evals/toolalpaca/data/simulated.jsonl   eval_simulated's 100 instructions over 10 APIs: the API's
                                        functions as tools (description, JSON schema read from its
                                        OpenAPI spec, the spec as documentation) and the golden actions

Usage: python3 evals/toolalpaca/prepare.py
"""
import json
import os

here = os.path.dirname(os.path.abspath(__file__))
repo = os.path.dirname(os.path.dirname(here))
data = os.path.join(os.path.dirname(repo), "shared", "data", "toolalpaca")

evals = {name: json.load(open(os.path.join(data, f"eval_{name}.json"))) for name in ("simulated", "real")}
held_out = {api["Name"] for apis in evals.values() for api in apis}
entries = json.load(open(os.path.join(data, "public_apis.json")))["entries"]
with open(os.path.join(repo, "recipes", "toolalpaca", "data", "apis.jsonl"), "w") as out:
    kept = 0
    for entry in entries:
        if entry["API"] in held_out or not entry["Description"].strip():
            continue
        out.write(json.dumps({"name": entry["API"], "description": entry["Description"], "category": entry["Category"],
                              "link": entry["Link"]}, ensure_ascii=False) + "\n")
        kept += 1

TYPES = {"integer": "integer", "number": "number", "boolean": "boolean", "array": "array", "object": "object"}


def schema_of(spec, path, method):
    operation = spec["paths"][path][method]
    properties, required = {}, []
    for param in operation.get("parameters", []):
        if "$ref" in param:
            name = param["$ref"].rsplit("/", 1)[-1]
            param = spec.get("components", {}).get("parameters", {}).get(name, {})
        if "name" not in param:
            continue
        kind = param.get("schema", {}).get("type", "string")
        properties[param["name"]] = {"type": [TYPES.get(kind, "string"), "string"] if kind in ("integer", "number", "boolean") else TYPES.get(kind, "string"),
                                     "description": param.get("description", "")}
        if param.get("required"):
            required.append(param["name"])
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    if "$ref" in body:
        body = spec.get("components", {}).get("schemas", {}).get(body["$ref"].rsplit("/", 1)[-1], {})
    for name, prop in body.get("properties", {}).items():
        properties[name] = {"description": prop.get("description", "")}
    required += [name for name in body.get("required", []) if name in properties]
    return {"type": "object", "properties": properties, "required": required}


with open(os.path.join(here, "data", "simulated.jsonl"), "w") as out:
    rows = 0
    for api in evals["simulated"]:
        spec = json.loads(api["Documentation"])
        tools = []
        for name, (path, method) in api["Function_Projection"].items():
            tools.append({"name": name, "description": api["Function_Description"][name],
                          "parameters": schema_of(spec, path, method),
                          "documentation": json.dumps({"function": name, "path": path, "method": method.upper(),
                                                      "operation": spec["paths"][path][method],
                                                      "components": spec.get("components", {})})})
        for index, instruction in enumerate(api["Instructions"]):
            required = {tool["name"]: tool["parameters"]["required"] for tool in tools}
            golden = []
            for step in api["Golden_Answers"][index]:
                try:
                    arguments = json.loads(step["Action_Input"]) if step["Action_Input"].strip() else {}
                except json.JSONDecodeError:
                    arguments = step["Action_Input"]
                golden.append({"action": step["Action"], "arguments": arguments, "required": required.get(step["Action"], [])})
            out.write(json.dumps({"api": api["Name"], "index": index, "instruction": instruction, "introduction": api["Introduction"],
                                  "documentation": api["NLDocumentation"], "tools": tools, "golden": golden}, ensure_ascii=False) + "\n")
            rows += 1
print(f"{kept} APIs for generation ({len(held_out)} held out), {rows} evaluation instructions")
