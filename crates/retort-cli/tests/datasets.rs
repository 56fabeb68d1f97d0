//! Every shape retort exports loads with Hugging Face `datasets` as it is (issue 11): the
//! default config, records, SFT messages from structs and maps, DPO rows as strings and as
//! TRL's conversations, and a Parquet file with no rows. Needs the Python environment that
//! `scripts/setup-test-python.sh` makes (`scripts/test.sh` runs it).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{retort, Mock};

fn python() -> PathBuf {
    let venv = std::env::var_os("RETORT_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-test"));
    let python = venv.join("bin/python");
    assert!(python.exists(), "{} is missing: run scripts/setup-test-python.sh (scripts/test.sh does)", python.display());
    python
}

#[test]
fn every_exported_shape_loads_with_hugging_face_datasets() {
    let mock = Mock::start(0);
    let url = mock.server().url();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("topics.jsonl"), "{\"topic\": \"tides\"}\n{\"topic\": \"bees\"}\n{\"topic\": \"moss\"}\n").unwrap();
    let recipe = r#"
name: shapes
llm: {backend: openai, base_url: "http://127.0.0.1:1/v1", model: m}
steps:
  - load: {path: topics.jsonl}
  - generate: {prompt: "Write one question about {{ topic }}.", into: question, messages_into: chat}
  - map:
      set:
        mapped: '[{"content": question, "role": "user"}, {"content": "An answer.", "role": "assistant"}]'
        worse: "'No idea.'"
        called: '[{"role": "user", "content": question}, {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "search", "arguments": "{}"}}]}, {"role": "tool", "content": "High tide at 6."}, {"role": "assistant", "content": "At 6."}]'
        offered: '[{"type": "function", "function": {"name": "search", "description": "Search the web.", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]'
  - export: {name: data, formats: [jsonl, parquet]}
  - export: {name: sft, shape: sft, messages: chat, formats: [jsonl, parquet]}
  - export: {name: sft_mapped, shape: sft, messages: mapped}
  - export: {name: dpo, shape: dpo, prompt: question, chosen: topic, rejected: worse, formats: [jsonl, parquet]}
  - export: {name: sft_tools, shape: sft, messages: called, tools: offered, formats: [jsonl, parquet]}
  - export: {name: sharegpt, shape: sharegpt, messages: called, loss: true, formats: [jsonl, parquet]}
  - export: {name: dpo_chat, shape: dpo, prompt: question, chosen: topic, rejected: worse, conversational: true, formats: [jsonl, parquet]}
  - filter: {keep: "false"}
  - export: {name: empty, formats: [parquet]}
"#;
    std::fs::write(dir.path().join("recipe.yaml"), recipe).unwrap();
    let output = retort(dir.path(), &["run", "recipe.yaml", "--out", "out", "--base-url", &url, "--model", "m", "--quiet"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let out = dir.path().join("out");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/load_outputs.py");
    let loaded = Command::new(python())
        .arg(script)
        .arg(&out)
        .args(["data", "sft", "sft_mapped", "dpo", "dpo_chat", "sft_tools", "sharegpt"])
        .output()
        .unwrap();
    assert!(loaded.status.success(), "datasets could not load the run:\n{}", String::from_utf8_lossy(&loaded.stderr));
    let found: serde_json::Value = serde_json::from_slice(&loaded.stdout).unwrap();
    assert_eq!(found["default"]["rows"], 3, "{found}");
    assert_eq!(found["default"]["columns"], found["data"]["columns"], "the default config is the main data: {found}");
    assert_eq!(found["sft"]["columns"], serde_json::json!(["messages"]));
    assert_eq!(found["sft"]["first"]["messages"][0]["role"], "user", "{found}");
    assert_eq!(found["sft_mapped"]["first"]["messages"][1]["content"], "An answer.", "{found}");
    assert_eq!(found["dpo"]["columns"], serde_json::json!(["prompt", "chosen", "rejected"]));
    assert_eq!(found["dpo_chat"]["first"]["chosen"][0]["role"], "assistant", "{found}");
    assert_eq!(found["empty.parquet"]["rows"], 0, "{found}");
    // Tool calls and the offered tools survive into SFT rows; ShareGPT turns carry their loss flag.
    assert_eq!(found["sft_tools"]["columns"], serde_json::json!(["messages", "tools"]), "{found}");
    assert_eq!(found["sft_tools"]["first"]["messages"][1]["tool_calls"][0]["function"]["name"], "search", "{found}");
    assert_eq!(found["sft_tools"]["first"]["tools"][0]["function"]["name"], "search", "{found}");
    let turns = &found["sharegpt"]["first"]["conversations"];
    let froms: Vec<&str> = turns.as_array().unwrap().iter().map(|turn| turn["from"].as_str().unwrap()).collect();
    assert_eq!(froms, ["human", "gpt", "observation", "gpt"], "{found}");
    assert_eq!(turns[3]["loss"], true, "{found}");
    assert_eq!(turns[0]["loss"], false, "{found}");
    assert!(turns[1]["value"].as_str().unwrap().contains("search"), "a tool call with no text is its turn's value: {found}");
    assert_eq!(found["sharegpt.parquet"]["rows"], 3, "{found}");
    assert_eq!(found["dpo_chat.parquet"]["rows"], 3, "{found}");
}
