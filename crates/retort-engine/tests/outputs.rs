//! What a run writes, as training tools and Hugging Face `datasets` read it (issue 11): one
//! field order for chat messages, the main data as the default config, a schema even with no
//! rows, TRL's conversational DPO rows, and no half-written file under a final name.

mod common;

use common::run;

const TOPICS: (&str, &str) = ("topics.jsonl", "{\"topic\": \"tides\"}\n{\"topic\": \"bees\"}\n");

fn parquet_columns(path: &std::path::Path) -> (Vec<String>, i64) {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let metadata = reader.metadata();
    let columns = metadata.file_metadata().schema_descr().root_schema().get_fields().iter().map(|field| field.name().to_string()).collect();
    (columns, metadata.file_metadata().num_rows())
}

/// Regression: camel wrote messages as `content, role` and other recipes as `role, content`;
/// `datasets` cannot concatenate the two struct orders.
#[test]
fn chat_messages_have_one_field_order_in_every_shape() {
    let ran = run(
        r#"
name: t
steps:
  - load: {path: topics.jsonl}
  - map:
      set:
        chat: '[{"content": "Tell me about " ~ topic, "role": "user"}, {"content": "It is " ~ topic, "role": "assistant", "name": "x"}]'
  - export: {name: data, formats: [jsonl, parquet]}
  - export: {name: sft, shape: sft, messages: chat}
"#,
        &[TOPICS],
    );
    for name in ["data", "sft"] {
        let text = std::fs::read_to_string(ran.out().join(format!("{name}.jsonl"))).unwrap();
        assert!(text.contains(r#"{"role":"user","content":"Tell me about tides"}"#), "{name}: {text}");
        assert!(!text.contains(r#""content":"Tell me about tides","role""#), "{name}: {text}");
    }
    let data = std::fs::read_to_string(ran.out().join("data.jsonl")).unwrap();
    assert!(data.contains(r#"{"role":"assistant","content":"It is tides","name":"x"}"#), "{data}");
}

/// Regression: `datasets.load_dataset(RUN_DIR)` failed on a card with two configs and no default.
#[test]
fn the_main_data_is_the_default_config_of_the_card() {
    let ran = run("name: t\nsteps:\n  - load: {path: topics.jsonl}\n  - export: {name: extra}\n  - export: {name: data}\n", &[TOPICS]);
    let card = std::fs::read_to_string(ran.out().join("README.md")).unwrap();
    let header = card.split("---").nth(1).unwrap();
    expect_test::expect![[r#"

        configs:
        - config_name: extra
          data_files: extra.jsonl
        - config_name: data
          data_files: data.jsonl
          default: true
        tags:
        - synthetic
        - retort
    "#]]
    .assert_eq(header);
}

/// Regression: an export with no rows wrote no Parquet file at all.
#[test]
fn an_export_with_no_rows_still_writes_its_parquet_schema() {
    let ran = run(
        r#"
name: t
steps:
  - load: {path: topics.jsonl}
  - map: {set: {question: "'What about ' ~ topic ~ '?'"}}
  - filter: {keep: "false"}
  - export: {formats: [jsonl, parquet]}
  - export: {name: sft, shape: sft, prompt: question, response: topic, formats: [parquet]}
  - export: {name: pairs, shape: dpo, prompt: question, chosen: topic, rejected: topic, conversational: true, formats: [parquet]}
"#,
        &[TOPICS],
    );
    assert_eq!(parquet_columns(&ran.out().join("data.parquet")), (vec!["question".to_string(), "topic".to_string()], 0));
    assert_eq!(parquet_columns(&ran.out().join("sft.parquet")), (vec!["messages".to_string()], 0));
    assert_eq!(parquet_columns(&ran.out().join("pairs.parquet")).0, ["prompt", "chosen", "rejected"]);
}

/// DPO rows in TRL's conversational form: prompt, chosen and rejected as message lists.
#[test]
fn dpo_rows_can_be_written_as_conversations() {
    let ran = run(
        r#"
name: t
steps:
  - load: {path: topics.jsonl}
  - map: {set: {question: "'What about ' ~ topic ~ '?'", good: "'A good answer'", bad: "'meh'", sys: "'Be kind.'"}}
  - export: {shape: dpo, prompt: question, chosen: good, rejected: bad, system: sys, conversational: true, formats: [jsonl, parquet]}
"#,
        &[TOPICS],
    );
    let rows = ran.data();
    assert_eq!(
        serde_json::Value::Object(rows[0].clone()),
        serde_json::json!({
            "prompt": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "What about tides?"}],
            "chosen": [{"role": "assistant", "content": "A good answer"}],
            "rejected": [{"role": "assistant", "content": "meh"}],
        })
    );
    assert_eq!(parquet_columns(&ran.out().join("data.parquet")).1, 2);
}

/// Every file is written under a partial name and renamed when complete: none is left behind.
#[test]
fn no_partial_file_is_left_after_a_run() {
    let ran = run("name: t\nsteps:\n  - load: {path: topics.jsonl}\n  - export: {formats: [jsonl, parquet]}\n", &[TOPICS]);
    let names: Vec<String> =
        std::fs::read_dir(ran.out()).unwrap().map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|name| !name.ends_with(".partial")), "{names:?}");
    for name in ["data.jsonl", "data.parquet", "data.lineage.jsonl", "failed.jsonl", "dropped.jsonl", "README.md"] {
        assert!(names.contains(&name.to_string()), "{name} missing from {names:?}");
    }
}
