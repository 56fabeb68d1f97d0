//! Every step kind, run through whole recipes on the scripted backend.

mod common;

use common::run;
use serde_json::json;

const TOPICS: (&str, &str) = ("topics.jsonl", "{\"topic\": \"tides\"}\n{\"topic\": \"bees\"}\n{\"topic\": \"tides\"}\n");

#[test]
fn generate_writes_answers_and_lineage() {
    let ran = run(
        r#####"
name: t
llm: {backend: scripted, rules: [{when: "question about (\\w+)", reply: "Why do $1 exist?"}]}
steps:
  - load: {path: topics.jsonl}
  - generate: {prompt: "Write one question about {{ topic }}.", into: question, temperature: 0.7}
"#####,
        &[TOPICS],
    );
    assert_eq!(ran.column("question"), vec![json!("Why do tides exist?"), json!("Why do bees exist?"), json!("Why do tides exist?")]);
    let lineage = common::read_jsonl(&ran.out().join("data.lineage.jsonl"));
    assert_eq!(lineage.len(), 3);
    let first = &lineage[0]["lineage"][0];
    assert_eq!(first["field"], "question");
    assert_eq!(first["model"], "scripted");
    assert_eq!(first["prompt"][0]["content"], "Write one question about tides.");
    assert_eq!(first["params"]["temperature"], 0.7);
    assert!(first["params"]["seed"].as_u64().is_some());
    // Same prompt, different records: different derived seeds.
    assert_ne!(lineage[0]["lineage"][0]["params"]["seed"], lineage[2]["lineage"][0]["params"]["seed"]);
}

#[test]
fn samples_fan_out_into_children() {
    let ran = run(
        r#####"
name: t
llm: {backend: scripted, rules: [{when: "about", replies: ["one", "two", "three", "four"]}]}
steps:
  - load: {records: [{topic: a}]}
  - generate: {prompt: "about {{ topic }}", into: answer, n: 3}
  - map: {set: {id_seen: "id"}}
"#####,
        &[],
    );
    assert_eq!(ran.column("id_seen"), vec![json!("0.0"), json!("0.1"), json!("0.2")]);
    assert_eq!(ran.report.steps[1].out, 3);
    assert_eq!(ran.report.steps[1].requests, 3);
}

#[test]
fn malformed_json_fails_the_record_with_the_raw_answer() {
    let ran = run(
        r#####"
name: t
llm:
  backend: scripted
  rules:
    - {when: "good", reply: "Sure! ```json\n{\"q\": \"why?\", \"a\": \"because\"}\n```"}
    - {when: "bad", reply: "I cannot do JSON today"}
steps:
  - load: {records: [{kind: good}, {kind: bad}]}
  - generate:
      prompt: "{{ kind }}"
      into: pair
      parse: {json: {schema: {type: object, required: [q, a], properties: {q: {type: string}, a: {type: string}}}, spread: true}}
"#####,
        &[],
    );
    assert_eq!(ran.column("q"), vec![json!("why?")]);
    let failed = ran.failed();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["status"], "failed");
    assert_eq!(failed[0]["step"], "steps[1].generate");
    assert!(failed[0]["reason"].as_str().unwrap().starts_with("expected JSON"), "{}", failed[0]["reason"]);
    assert_eq!(failed[0]["raw"], "I cannot do JSON today");
    assert_eq!(ran.report.failed, 1);
}

#[test]
fn one_repair_attempt_fixes_a_bad_answer() {
    let ran = run(
        r#####"
name: t
llm:
  backend: scripted
  rules:
    - {when: "(?s)could not be used", reply: "{\"n\": 4}"}
    - {when: "count", reply: "four"}
steps:
  - load: {records: [{x: 1}]}
  - generate: {prompt: "count", into: result, parse: json, repair: true}
"#####,
        &[],
    );
    assert_eq!(ran.column("result"), vec![json!({"n": 4})]);
    assert_eq!(ran.report.steps[1].requests, 2);
}

#[test]
fn parsers_extract_answers_and_keep_raw_text() {
    let ran = run(
        r#####"
name: t
llm: {backend: scripted, rules: [{when: "solve", reply: "3 + 4 = 7\n#### 7"}]}
steps:
  - load: {records: [{q: solve}]}
  - generate: {prompt: "{{ q }}", into: answer, parse: {tagged: "####"}, raw_into: rationale, messages_into: messages}
"#####,
        &[],
    );
    let row = &ran.data()[0];
    assert_eq!(row["answer"], "7");
    assert_eq!(row["rationale"], "3 + 4 = 7\n#### 7");
    assert_eq!(row["messages"], json!([{"role": "user", "content": "solve"}, {"role": "assistant", "content": "3 + 4 = 7\n#### 7"}]));
}

#[test]
fn judge_scores_and_compares() {
    let ran = run(
        r#####"
name: t
llm:
  backend: scripted
  rules:
    - {when: "(?s)Rate.*long", reply: "Thorough. Score: 5"}
    - {when: "(?s)Rate.*short", reply: "Thin. Score: 2"}
    - {when: "(?s)Rate.*broken", reply: "no idea"}
    - {when: "(?s)Which.*A: long.*B: short", reply: "[[A]]"}
    - {when: "(?s)Which.*A: short.*B: long", reply: "[[B]]"}
steps:
  - load: {records: [{x: long, y: short}, {x: short, y: long}, {x: broken, y: short}]}
  - judge: {prompt: "Rate {{ x }}", into: score, scale: [1, 5]}
  - judge: {mode: pairwise, a: x, b: y, swap: true, prompt: "Which is better? A: {{ a }} B: {{ b }}", into: preferred}
"#####,
        &[],
    );
    assert_eq!(ran.column("score"), vec![json!(5.0), json!(2.0)]);
    assert_eq!(ran.column("preferred"), vec![json!("a"), json!("b")]);
    let failed = ran.failed();
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["reason"].as_str().unwrap().contains("expected a score"));
}

#[test]
fn verify_marks_or_drops_by_answer() {
    let ran = run(
        r#####"
name: t
llm: {backend: scripted, rules: [{when: "two", reply: "so #### 2"}, {when: "three", reply: "#### 4"}]}
steps:
  - load: {records: [{q: two, gold: "#### 2"}, {q: three, gold: "#### 3"}]}
  - generate: {prompt: "{{ q }}", into: answer}
  - verify: {check: answer_match, field: answer, gold: gold, into: correct, reason_into: why}
  - verify: {check: regex, field: answer, pattern: "^so", require: true}
"#####,
        &[],
    );
    assert_eq!(ran.column("correct"), vec![json!(true)]);
    let dropped = ran.dropped();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0]["record"]["correct"], false);
    assert_eq!(dropped[0]["record"]["why"], "expected the answer 3, found 4");
    assert!(dropped[0]["reason"].as_str().unwrap().contains("expected a match for /^so/"));
}

#[test]
fn verify_json_schema() {
    let ran = run(
        r#####"
name: t
steps:
  - load: {records: [{doc: "{\"a\": 1}"}, {doc: "{\"b\": 1}"}, {doc: "not json"}]}
  - verify: {check: json_schema, field: doc, schema: {type: object, required: [a]}, reason_into: why}
"#####,
        &[],
    );
    assert_eq!(ran.column("verified"), vec![json!(true), json!(false), json!(false)]);
    assert!(ran.column("why")[1].as_str().unwrap().contains("does not match the schema"));
}

#[test]
fn filter_map_and_when() {
    let ran = run(
        r#####"
name: t
vars: {minimum: 3}
steps:
  - load: {records: [{n: 1, word: "a"}, {n: 5, word: "bbbb"}, {n: 9, word: "cc"}]}
  - filter: {keep: "n >= vars.minimum"}
  - map:
      set: {double: "n * 2", big: "n > 6"}
      render: {label: "{{ word | upper }}-{{ double }}"}
      rename: {word: text}
      remove: [big]
  - map: {set: {note: "'large'"}, when: "n > 6"}
  - filter: {drop: "text | length > 3"}
"#####,
        &[],
    );
    assert_eq!(
        ran.data(),
        vec![json!({"n": 9, "double": 18, "label": "CC-18", "text": "cc", "note": "large"}).as_object().unwrap().clone()]
    );
    let reasons: Vec<_> = ran.dropped().iter().map(|row| row["reason"].as_str().unwrap().to_string()).collect();
    assert_eq!(reasons, vec!["filter keep: `n >= vars.minimum` was false", "filter drop: `text | length > 3` was true"]);
}

#[test]
fn dedup_removes_normalised_duplicates() {
    let ran = run(
        r#####"
name: t
steps:
  - load: {records: [{q: "What is rain?"}, {q: "what is   RAIN"}, {q: "What is snow?"}]}
  - dedup: {field: q}
"#####,
        &[],
    );
    assert_eq!(ran.column("q"), vec![json!("What is rain?"), json!("What is snow?")]);
    assert!(ran.dropped()[0]["reason"].as_str().unwrap().starts_with("dedup: exact duplicate"));
}

#[test]
fn pair_takes_best_against_worst() {
    let ran = run(
        r#####"
name: t
llm:
  backend: scripted
  rules:
    - {when: "^user: Answer \\w (\\w+)$", reply: "$1 answer"}
    - {when: "Rate (a|longer) answer", reply: "Score: 5"}
    - {when: "Rate mid answer", reply: "Score: 3"}
    - {when: "Rate tiny answer", reply: "Score: 1"}
    - {when: "Rate enormous answer", reply: "Score: 1"}
steps:
  - load: {records: [{prompt: "Answer p", style: longer}, {prompt: "Answer p", style: a}, {prompt: "Answer p", style: tiny}, {prompt: "Answer p", style: enormous}, {prompt: "Answer q", style: mid}]}
  - generate: {prompt: "{{ prompt }} {{ style }}", into: response}
  - judge: {prompt: "Rate {{ response }}"}
  - pair: {score: score, response: response, prompt: prompt, group_by: prompt, tie_break: shorter}
  - export: {shape: dpo, formats: [jsonl, parquet]}
"#####,
        &[],
    );
    let rows = ran.data();
    // Ties go to the shorter as chosen and the longer as rejected; a one-candidate group makes no pair.
    assert_eq!(rows, vec![json!({"prompt": "Answer p", "chosen": "a answer", "rejected": "enormous answer"}).as_object().unwrap().clone()]);
    assert!(ran.out().join("data.parquet").exists());
    let reasons: Vec<String> = ran.dropped().iter().map(|row| row["reason"].as_str().unwrap().to_string()).collect();
    assert!(reasons.contains(&"pair: no two candidates differ by more than 0 (scores 3)".to_string()), "{reasons:?}");
}

#[test]
fn converse_takes_turns_until_the_stop_phrase() {
    let ran = run(
        r#####"
name: t
llm:
  backend: scripted
  rules:
    - {when: "(?s)^system: You are the user.*Solution: step 2", reply: "Thanks. <DONE>"}
    - {when: "(?s)^system: You are the user.*Solution: step 1", reply: "Instruction: step 2"}
    - {when: "(?s)^system: You are the user", reply: "Instruction: step 1"}
    - {when: "(?s)^system: You are the assistant.*Instruction: step (\\d)\\s*$", reply: "Solution: step $1"}
steps:
  - load: {records: [{task: "build a kite"}]}
  - converse:
      roles:
        - {name: user, system: "You are the user. Task: {{ task }}"}
        - {name: assistant, system: "You are the assistant. Task: {{ task }}"}
      stop: "<DONE>"
      max_turns: 10
      messages_as: assistant
"#####,
        &[],
    );
    let row = &ran.data()[0];
    assert_eq!(row["turns"], 5);
    assert_eq!(row["stopped_by"], "<DONE>");
    assert_eq!(row["dialogue"][1], json!({"role": "assistant", "content": "Solution: step 1"}));
    assert_eq!(row["messages"][0]["role"], "system");
    assert_eq!(row["messages"][2], json!({"role": "assistant", "content": "Solution: step 1"}));
}

/// Regression: a CAMEL dialogue on the local model (2,048 tokens of context) failed at its 8th
/// turn and lost the seven turns before; a conversation that outgrows the context now ends there.
#[test]
fn converse_ends_where_the_dialogue_outgrows_the_context() {
    let recipe = |require_stop: bool, first_too_long: bool| {
        format!(
            r#####"
name: t
llm:
  backend: scripted
  rules:
    - {{when: "(?s)Solution: step 2", error: context_length}}
    - {{when: "(?s)^system: You are the user.*Solution: step 1", reply: "Instruction: step 2"}}
    - {{when: "(?s)^system: You are the user.*{long}", error: context_length}}
    - {{when: "(?s)^system: You are the user", reply: "Instruction: step 1"}}
    - {{when: "(?s)^system: You are the assistant.*Instruction: step (\\d)\\s*$", reply: "Solution: step $1"}}
steps:
  - load: {{records: [{{task: "build a kite"}}]}}
  - converse:
      roles:
        - {{name: user, system: "You are the user. Task: {{{{ task }}}}"}}
        - {{name: assistant, system: "You are the assistant. Task: {{{{ task }}}}"}}
      stop: "<DONE>"
      max_turns: 10
      require_stop: {require_stop}
"#####,
            long = if first_too_long { "kite" } else { "no such text" }
        )
    };
    // The fifth turn would not fit: the four before are kept.
    let ran = run(&recipe(false, false), &[]);
    let row = &ran.data()[0];
    assert_eq!(row["turns"], 4);
    assert_eq!(row["stopped_by"], "context_length");
    assert_eq!(row["dialogue"][3], json!({"role": "assistant", "content": "Solution: step 2"}));
    // Where a stop phrase is required, running out of context is no stop: dropped, saying why.
    let ran = run(&recipe(true, false), &[]);
    assert!(ran.data().is_empty());
    assert!(ran.dropped()[0]["reason"].as_str().unwrap().contains("outgrew the model's context"), "{:?}", ran.dropped());
    // A first turn that does not fit leaves nothing to keep: the record fails with the reason.
    let ran = run(&recipe(false, true), &[]);
    assert!(ran.data().is_empty());
    assert!(ran.failed()[0]["reason"].as_str().unwrap().contains("context_length"), "{:?}", ran.failed());
}

#[test]
fn repeat_feeds_rounds_and_stops_when_told() {
    let ran = run(
        r#####"
name: t
steps:
  - load: {records: [{n: 1}, {n: 2}]}
  - repeat:
      rounds: 5
      feed: output
      until: "total >= 6"
      steps:
        - map: {set: {n: "n * 10", seen_round: "round"}}
"#####,
        &[],
    );
    assert_eq!(ran.column("n"), vec![json!(10), json!(20), json!(100), json!(200), json!(1000), json!(2000)]);
    assert_eq!(ran.column("round"), vec![json!(1), json!(1), json!(2), json!(2), json!(3), json!(3)]);
    assert_eq!(ran.column("seen_round"), ran.column("round"));
    assert!(ran.out().join("rounds/round-3.jsonl").exists());
    assert!(!ran.out().join("rounds/round-4.jsonl").exists());
}

#[test]
fn repeat_accumulates_and_emits_last() {
    let ran = run(
        r#####"
name: t
steps:
  - load: {records: [{n: 1}]}
  - repeat:
      rounds: 3
      feed: accumulate
      emit: last
      steps:
        - map: {set: {n: "n + 1"}}
"#####,
        &[],
    );
    // Pool: [1] → out [2]; [1,2] → out [2,3]; [1,2,2,3] → out [2,3,3,4].
    assert_eq!(ran.column("n"), vec![json!(2), json!(3), json!(3), json!(4)]);
}

#[test]
fn sample_and_explode() {
    let ran = run(
        r#####"
name: t
steps:
  - load: {records: [{x: 1}, {x: 2}]}
  - sample: {from: personas.txt, k: 2, into: personas}
  - explode: {field: personas, into: persona, index_into: position}
"#####,
        &[("personas.txt", "a pilot\na chef\na monk\n")],
    );
    let rows = ran.data();
    assert_eq!(rows.len(), 4);
    for row in &rows {
        assert!(["a pilot", "a chef", "a monk"].contains(&row["persona"].as_str().unwrap()));
    }
    assert_ne!(rows[0]["persona"], rows[1]["persona"], "drawn without replacement");
    // Deterministic: the same recipe draws the same.
    let again = run(
        r#####"
name: t
steps:
  - load: {records: [{x: 1}, {x: 2}]}
  - sample: {from: personas.txt, k: 2, into: personas}
  - explode: {field: personas, into: persona, index_into: position}
"#####,
        &[("personas.txt", "a pilot\na chef\na monk\n")],
    );
    assert_eq!(again.data(), rows);
}

#[test]
fn export_shapes_sft_and_dpo() {
    let ran = run(
        r#####"
name: t
steps:
  - load: {records: [{q: "hi?", a: "hello", good: "yes", bad: "no"}]}
  - export: {name: sft, shape: sft, prompt: q, response: a, formats: [jsonl, parquet]}
  - export: {name: dpo, shape: dpo, prompt: q, chosen: good, rejected: bad}
  - export: {name: slim, fields: [q]}
"#####,
        &[],
    );
    assert_eq!(
        ran.rows("sft"),
        vec![json!({"messages": [{"role": "user", "content": "hi?"}, {"role": "assistant", "content": "hello"}]})
            .as_object()
            .unwrap()
            .clone()]
    );
    assert_eq!(ran.rows("dpo"), vec![json!({"prompt": "hi?", "chosen": "yes", "rejected": "no"}).as_object().unwrap().clone()]);
    assert_eq!(ran.rows("slim"), vec![json!({"q": "hi?"}).as_object().unwrap().clone()]);
    assert!(ran.out().join("sft.parquet").exists());
    let card = std::fs::read_to_string(ran.out().join("README.md")).unwrap();
    assert!(card.contains("| sft.jsonl | sft | 1 |"), "{card}");
}

#[test]
fn load_reads_every_format() {
    // Parquet written by one run is read back by the next.
    let first = run(
        "name: t\nsteps:\n  - load: {path: rows.csv}\n  - export: {formats: [jsonl, parquet]}\n",
        &[("rows.csv", "q,a\nwhy,because\nhow,so\n")],
    );
    assert_eq!(first.column("q"), vec![json!("why"), json!("how")]);
    let parquet = std::fs::read(first.out().join("data.parquet")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rows.parquet"), parquet).unwrap();
    let report = common::run_in(dir.path(), "name: t\nsteps:\n  - load: {path: rows.parquet}\n", &[], &Default::default());
    assert_eq!(report.rows, vec![("data".to_string(), 2)]);
    let back = common::read_jsonl(&dir.path().join("out/data.jsonl"));
    assert_eq!(back[1]["a"], "so");
    for (file, text, expected) in
        [("rows.json", "[{\"q\": 1}, {\"q\": 2}]", 2), ("rows.txt", "one\n\ntwo\nthree\n", 3), ("rows.tsv", "q\ta\nx\ty\n", 1)]
    {
        let ran = run(&format!("name: t\nsteps:\n  - load: {{path: {file}, limit: 5}}\n"), &[(file, text)]);
        assert_eq!(ran.data().len(), expected, "{file}");
    }
}

#[test]
fn a_panicking_or_failing_record_does_not_stop_the_run() {
    let ran = run(
        r#####"
name: t
llm: {backend: scripted, rules: [{when: "ok", reply: "fine"}, {when: "down", error: server}]}
steps:
  - load: {records: [{q: ok}, {q: down}, {q: ok}]}
  - generate: {prompt: "{{ q }}", into: answer}
"#####,
        &[],
    );
    assert_eq!(ran.data().len(), 2);
    let failed = ran.failed();
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["reason"].as_str().unwrap().starts_with("model request failed: server"), "{}", failed[0]["reason"]);
}

#[test]
fn score_reads_log_probabilities() {
    let ran = run(
        r#####"
name: t
llm: {backend: scripted, rules: [{when: "good", logprob: -0.5}, {when: "bad", logprob: -3.0}]}
steps:
  - load: {records: [{text: "a good review"}, {text: "a bad review"}]}
  - score: {prompt: "Write a review.", continuation: "{{ text }}", into: logprob, mean_into: mean}
"#####,
        &[],
    );
    let means = ran.column("mean");
    assert_eq!(means, vec![json!(-0.5), json!(-3.0)]);
    assert!(ran.column("logprob")[0].as_f64().unwrap() < 0.0);
}

#[test]
fn dedup_minhash_and_embedding_remove_near_duplicates() {
    let records = r#####"[{q: "How do tides form on the coast of Maine?"}, {q: "How do tides form on the coast of Maine??"}, {q: "Why is the sky blue during the day?"}, {q: "Explain why the daytime sky looks blue."}, {q: "What is the capital of France?"}]"#####;
    let minhash =
        run(&format!("name: t\nsteps:\n  - load: {{records: {records}}}\n  - dedup: {{field: q, method: minhash, threshold: 0.8}}\n"), &[]);
    assert_eq!(minhash.data().len(), 4, "{:?}", minhash.column("q"));
    assert!(minhash.dropped()[0]["reason"].as_str().unwrap().starts_with("dedup: near-duplicate kept record #0"));
    let words = run(&format!("name: t\nsteps:\n  - load: {{records: {records}}}\n  - dedup: {{field: q, method: minhash, threshold: 0.7, shingle: {{words: 2}}}}\n"), &[]);
    assert_eq!(words.data().len(), 4, "{:?}", words.column("q"));
    let embedding = run(
        &format!("name: t\nsteps:\n  - load: {{records: {records}}}\n  - dedup: {{field: q, method: embedding, threshold: 0.75, similarity_into: nearest}}\n"),
        &[],
    );
    let kept: Vec<_> = embedding.column("q");
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert!(!kept.contains(&json!("Explain why the daytime sky looks blue.")), "{kept:?}");
}

#[test]
fn dedup_rouge_l_drops_what_is_too_close_to_the_pool_or_to_a_kept_record() {
    // The pool file's texts count as kept from the start; ROUGE-L at or above 0.7 is a duplicate.
    let ran = run(
        r#####"
name: t
steps:
  - load: {records: [{q: "Write a short poem about the sea."}, {q: "Write a poem about the sea"}, {q: "List three uses of copper."}, {q: "Give three uses of copper"}, {q: "Name two uses of copper wire in homes."}]}
  - dedup: {field: q, method: rouge_l, pool: {from: pool.jsonl, field: instruction}}
"#####,
        &[("pool.jsonl", "{\"instruction\": \"Describe the sea.\"}\n{\"instruction\": \"List three uses of copper\"}\n")],
    );
    assert_eq!(ran.column("q"), vec![json!("Write a short poem about the sea."), json!("Name two uses of copper wire in homes.")]);
    let dropped = ran.dropped();
    let reasons: Vec<&str> = dropped.iter().map(|row| row["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    // 6 of 7 and 6 words in order: 2 * 6/7 * 1 / (6/7 + 1) = 0.92.
    assert!(reasons[0].starts_with("dedup: ROUGE-L near-duplicate of kept record #0 (similarity 0.92"), "{reasons:?}");
    assert!(reasons[1].starts_with("dedup: ROUGE-L near-duplicate of pool.jsonl line 2 (similarity 1.00"), "{reasons:?}");
    // "give three uses of copper" against the pool's "list three uses of copper": 4 of 5 words.
    assert!(reasons[2].starts_with("dedup: ROUGE-L near-duplicate of pool.jsonl line 2 (similarity 0.80"), "{reasons:?}");
    let problems = common::problems("name: t\nsteps:\n  - load: {records: [{q: a}]}\n  - dedup: {field: q, method: rouge_l, threshold: 0, pool: {from: missing.jsonl}}\n", &[]);
    assert!(problems.contains("steps[1].dedup.threshold: expected a similarity in (0, 1], found 0"), "{problems}");
    assert!(problems.contains("steps[1].dedup.pool.from"), "{problems}");
}

#[test]
fn top_keeps_the_k_best_of_each_group_and_fails_what_has_no_score() {
    let records = r#####"[{g: a, s: 1}, {g: a, s: 5}, {g: b, s: 2}, {g: a, s: 3}, {g: b, s: "7"}, {g: a, s: 5}, {g: b, s: x}]"#####;
    let best =
        run(&format!("name: t\nsteps:\n  - load: {{records: {records}}}\n  - top: {{by: s, k: 2, group_by: g, rank_into: rank}}\n"), &[]);
    // Best first within each group; of equal scores the earlier record wins.
    let kept: Vec<(String, String, u64)> =
        best.data().iter().map(|row| (row["g"].as_str().unwrap().into(), row["s"].to_string(), row["rank"].as_u64().unwrap())).collect();
    let expected: Vec<(String, String, u64)> = [("a", "5", 1), ("a", "5", 2), ("b", "\"7\"", 1), ("b", "2", 2)]
        .iter()
        .map(|(g, s, r)| (g.to_string(), s.to_string(), *r))
        .collect();
    assert_eq!(kept, expected);
    let dropped = best.dropped();
    let reasons: Vec<&str> = dropped.iter().map(|row| row["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["top: s = 1 is not among the 2 highest of group \"a\"", "top: s = 3 is not among the 2 highest of group \"a\""]);
    assert_eq!(best.failed()[0]["reason"], json!("top: expected a number in `s`, found \"x\""));
    // `lowest`, one group.
    let low = run(&format!("name: t\nsteps:\n  - load: {{records: {records}}}\n  - filter: {{keep: \"s != 'x'\"}}\n  - top: {{by: s, k: 1, lowest: true}}\n"), &[]);
    assert_eq!(low.column("s"), vec![json!(1)]);
    let problems = common::problems("name: t\nsteps:\n  - load: {records: [{s: 1}]}\n  - top: {by: s, k: 0}\n", &[]);
    assert!(problems.contains("steps[1].top.k: expected at least 1 record per group, found 0"), "{problems}");
}

#[test]
fn dedup_inside_repeat_keeps_going_until_enough_unique() {
    // Each round samples one of three answers; the index spans rounds, so the loop runs
    // until three unique records exist.
    let ran = run(
        r#####"
name: t
llm: {backend: scripted, rules: [{when: "name", replies: ["red", "green", "blue"]}]}
steps:
  - load: {records: [{x: 1}]}
  - repeat:
      rounds: 50
      feed: input
      until: "total >= 3"
      steps:
        - generate: {prompt: "name a colour", into: colour}
        - dedup: {field: colour}
"#####,
        &[],
    );
    let mut colours: Vec<String> = ran.column("colour").iter().map(|value| value.as_str().unwrap().to_string()).collect();
    colours.sort();
    assert_eq!(colours, vec!["blue", "green", "red"]);
}

#[test]
fn play_records_taboo_episodes_with_the_referees_outcome() {
    let ran = run(
        r#####"
name: t
llm:
  backend: scripted
  rules:
    - {when: "(?s)You are the attacker\\. The target word is `apple`", reply: "What fruit do you put in a pie in autumn?"}
    - {when: "(?s)You are the defender.*What fruit", reply: "Probably apples, with cinnamon."}
    - {when: "(?s)You are the attacker", reply: "Tell me about your favourite snack."}
    - {when: "(?s)You are the defender", reply: "I like crackers."}
steps:
  - load: {records: [{word: apple}, {word: ocean}]}
  - play: {game: taboo, target: "{{ word }}", max_turns: 2, outcome_into: outcome}
"#####,
        &[],
    );
    assert_eq!(ran.column("outcome"), vec![json!("attacker_wins"), json!("draw")]);
    let episode = &ran.data()[0]["episode"];
    assert_eq!(episode["turns"].as_array().unwrap().len(), 2);
    assert!(episode["rewards"][0].as_f64().unwrap() > 0.0);
}

#[test]
fn act_runs_a_react_agent_with_tools() {
    let ran = run(
        r#####"
name: t
llm:
  backend: scripted
  rules:
    - {when: "(?s)Observation: 5", reply: "Thought: I now know the final answer\nFinal Answer: 5"}
    - {when: "(?s)Add 2 and 3", reply: "Thought: use the calculator\nAction: calculator\nAction Input: {\"expression\": \"2+3\"}"}
steps:
  - load: {records: [{q: "Add 2 and 3."}]}
  - act:
      task: "{{ q }}"
      tools: [{kind: calculator}]
      agent: {format: react, max_steps: 4}
      messages_into: messages
      require_success: true
"#####,
        &[],
    );
    let row = &ran.data()[0];
    assert_eq!(row["trajectory"]["final_answer"], "5");
    assert_eq!(row["trajectory"]["steps"][0]["action"], "calculator");
    assert_eq!(row["trajectory"]["steps"][0]["observation"], "5");
    assert!(row["messages"].as_array().unwrap().len() >= 3);
}

#[test]
fn train_hands_each_round_to_the_trainer_and_switches_the_model() {
    // The trainer is a shell script: it records its arguments, logs to stderr and names the next model.
    let trainer = "#!/bin/sh\necho \"$RETORT_ROUND $(wc -l < \"$RETORT_DATA\")\" >> calls.txt\necho \"step 1 loss 0.5\" >&2\necho \"model-after-round-$RETORT_ROUND\"\n";
    let ran = run(
        r#####"
name: t
vars: {trainer: "sh {{ out }}/../../../trainer.sh --data {{ data }}"}
llm: {backend: scripted, rules: [{when: "answer", reply: "ok"}]}
steps:
  - load: {records: [{q: a}, {q: b}]}
  - repeat:
      rounds: 3
      feed: input
      steps:
        - generate: {prompt: "answer {{ q }}", into: response}
        - train: {command: "{{ vars.trainer }}", data: {shape: sft, prompt: q, response: response}}
"#####,
        &[("trainer.sh", trainer)],
    );
    let calls = std::fs::read_to_string(ran.out().join("calls.txt")).unwrap();
    assert_eq!(calls, "1 2\n2 2\n3 2\n");
    // The round's log holds the trainer's stderr, then its stdout.
    let log = std::fs::read_to_string(ran.out().join("rounds/train-round-2.log")).unwrap();
    assert_eq!(log, "step 1 loss 0.5\nmodel-after-round-2\n");
    let lineage = common::read_jsonl(&ran.out().join("data.lineage.jsonl"));
    let models: Vec<_> = lineage.iter().map(|line| line["lineage"][0]["model"].as_str().unwrap().to_string()).collect();
    assert_eq!(
        models,
        ["scripted", "scripted", "model-after-round-1", "model-after-round-1", "model-after-round-2", "model-after-round-2"]
    );
    assert!(
        ran.report.notes.iter().any(|note| note.contains("round 2 trained on 2 rows → model model-after-round-2")),
        "{:?}",
        ran.report.notes
    );
}

#[test]
fn iterate_loops_each_record_until_its_own_condition() {
    let ran = run(
        r#####"
name: t
llm:
  backend: scripted
  rules:
    - {when: 'attempt 3 of task b', reply: 'yes'}
    - {when: 'attempt', reply: 'no'}
steps:
  - load: {records: [{task: a, target: 2}, {task: b, target: 9}, {task: c, target: 9}]}
  - map: {set: {count: "0"}}
  - iterate:
      max_iterations: 4
      until: "count >= target or reply == 'yes'"
      steps:
        - map: {set: {count: "count + 1"}}
        - generate: {prompt: "attempt {{ iteration }} of task {{ task }}", into: reply}
"#####,
        &[],
    );
    // a stops after 2 passes by its count, b after 3 by its reply, c runs out at 4; each leaves
    // as soon as it is done, with the id it came in with.
    let rows: Vec<(String, i64, i64, String)> = ran
        .data()
        .iter()
        .map(|r| {
            (
                r["task"].as_str().unwrap().to_string(),
                r["count"].as_i64().unwrap(),
                r["iteration"].as_i64().unwrap(),
                r["reply"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [("a".to_string(), 2, 2, "no".to_string()), ("b".to_string(), 3, 3, "yes".to_string()), ("c".to_string(), 4, 4, "no".to_string())]
    );
    let ids: Vec<String> = ran.rows("data.lineage").iter().map(|r| r["id"].as_str().unwrap_or_default().to_string()).collect();
    assert!(ids.iter().all(|id| !id.contains('~')), "{ids:?}");
    // Every pass asked anew: 2 + 3 + 4 requests.
    assert_eq!(ran.report.steps.iter().find(|s| s.step.ends_with("iterate.steps[1].generate")).unwrap().requests, 9);
}
