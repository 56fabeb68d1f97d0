//! Validation messages, snapshotted: every problem at once, with its path, what was expected and what was found.

mod common;

use common::problems;
use expect_test::{expect, Expect};

const TOPICS: (&str, &str) = ("topics.jsonl", "{\"topic\": \"tides\"}\n");

fn check(recipe: &str, expected: Expect) {
    expected.assert_eq(&problems(recipe, &[TOPICS]));
}

#[test]
fn the_quickstart_is_valid() {
    check(
        r#"
name: quickstart
llm: {backend: openai, base_url: "http://127.0.0.1:8000/v1", model: default}
steps:
  - load: {path: topics.jsonl}
  - generate: {prompt: "Write one question about {{ topic }}.", into: question}
  - generate: {prompt: "Answer this question in two sentences: {{ question }}", into: answer}
  - filter: {keep: "answer | length > 20"}
  - export: {formats: [jsonl, parquet]}
"#,
        expect!["ok"],
    );
}

#[test]
fn unknown_variables_name_the_fields_available() {
    check(
        r#"
name: t
llm: {backend: scripted}
steps:
  - load: {path: topics.jsonl}
  - generate: {prompt: "Write one question about {{ topic }}.", into: question}
  - generate: {prompt: "Answer: {{ questoin }}", into: answer}
  - filter: {keep: "answr | length > 20"}
  - verify: {check: answer_match, field: answer, gold: gold}
"#,
        expect![[r#"
            steps[2].generate.prompt: unknown variable `questoin`; fields available here: question, topic
            steps[3].filter.keep: unknown variable `answr`; fields available here: answer, question, topic
            steps[4].verify.gold: unknown field `gold`; fields available here: answer, question, topic"#]],
    );
}

#[test]
fn structure_and_context_problems_are_listed_together() {
    check(
        r#"
name: t
llm: {backend: openai, base_url: "http://127.0.0.1:8000/v1", modle: default}
steps:
  - load: {path: topics.jsonl, limt: 3}
  - generat: {prompt: x}
  - generate: {prompt: "{{ topic }}", into: question, n: many}
  - generate: {prompt: "{{ question }} {% if %}", into: answer}
  - filter: {keep: "answer | length >"}
  - judge: {prompt: "Rate {{ answer }}", llm: critic}
  - export: {formats: [jsonl, csv]}
"#,
        expect![[r#"
            llm.modle: unknown key `modle`; did you mean `model`? expected one of: backend, base_url, base_urls, model, api_key_env, max_concurrency, requests_per_minute, tokens_per_minute, timeout_s, connect_timeout_s, max_retries, retry_base_s, retry_max_s, rate_limit_cooldown_s, failover_cooldown_s, extra_body, grammar_field, hedge, hedge_after_s, price
            steps[0].load.limt: unknown key `limt`; did you mean `limit`? expected one of: path, records, format, limit, skip, text_field, when, concurrency
            steps[1]: unknown step kind `generat`; did you mean `generate`? kinds: load, generate, judge, score, verify, filter, map, dedup, vote, top, pair, converse, act, call, play, repeat, iterate, retrieve, sample, explode, fit, metrics, train, export
            steps[2].generate.n: expected a whole number, found string "many"
            steps[6].export.formats[1]: unknown variant `csv`, expected `jsonl` or `parquet`
            steps[3].generate.prompt: template does not compile: syntax error: unexpected end of block (in steps[3].generate.prompt:1)
            steps[4].filter.keep: expression `answer | length >` does not compile: syntax error: unexpected end of input, expected expression (in <expression>:1)
            steps[5].judge.llm: unknown llm `critic`; llms defined: default"#]],
    );
}

#[test]
fn top_level_problems() {
    check(
        "steps: 3\nseed: -1\nvars: [1]\n",
        expect![[r#"
        name: missing; every recipe has a name
        seed: expected a non-negative integer, found the number -1
        vars: expected a mapping, found a list
        steps: expected a list of steps, found the number 3"#]],
    );
    check(
        "name: t\nsteps:\n  - generate: {prompt: x, into: y}\n",
        expect![[r#"
        steps[0].generate: the first step must be `load`, found `generate`
        steps[0].generate.llm: this step needs a model, but the recipe has no `llm:` block"#]],
    );
    check(
        "name: t\nllm: {backend: vllm}\nsteps:\n  - load: {path: missing.jsonl}\n",
        expect![[r#"
        llm.backend: unknown backend `vllm`; expected one of: openai, local, scripted
        steps[0].load.path: file not found: PATH/missing.jsonl"#]],
    );
    check(
        "name: t\nsteps:\n  - load: {path: topics.jsonl}\n    extra: 1\n",
        expect![[r#"
        steps[0]: expected exactly one step kind as the key, found 2 keys: load, extra"#]],
    );
    check(
        "name: t\nsteps: [\n",
        expect![[r#"
        not valid YAML: did not find expected node content at line 3 column 1, while parsing a flow node"#]],
    );
}

#[test]
fn step_rules() {
    check(
        r#"
name: t
llm: {backend: scripted}
steps:
  - load: {path: topics.jsonl}
  - generate: {into: x}
  - judge: {prompt: "{{ a }} {{ b }}", mode: pairwise}
  - filter: {keep: "true", drop: "false"}
  - repeat: {rounds: 0, steps: [{load: {path: topics.jsonl}}]}
  - converse: {roles: [{name: solo}]}
  - parse_me: {}
"#,
        expect![[r#"
            steps[4].repeat.rounds: expected at least 1 round, found 0
            steps[4].repeat.steps[0].load: `load` cannot be inside `repeat`; its input is the round's seeds
            steps[6]: unknown step kind `parse_me`; kinds: load, generate, judge, score, verify, filter, map, dedup, vote, top, pair, converse, act, call, play, repeat, iterate, retrieve, sample, explode, fit, metrics, train, export
            steps[1].generate: no prompt; give `prompt`, `template_file`, `messages` or `messages_from`
            steps[2].judge: pairwise judging needs `a` and `b`: the fields holding the two answers
            steps[3].filter: give exactly one of `keep` and `drop`
            steps[5].converse.roles: expected at least 2 roles, found 1"#]],
    );
}

#[test]
fn a_grammar_needs_its_root_rule_and_no_schema_beside_it() {
    check(
        r#"
name: t
llm: {backend: scripted}
steps:
  - load: {path: topics.jsonl}
  - generate:
      prompt: "{{ topic }}"
      into: q
      grammar: 'answer ::= "yes" | "no"'
  - generate:
      prompt: "{{ topic }}"
      into: r
      grammar: 'root ::= "{}"'
      parse: {json: {schema: {type: object}}}
  - judge: {prompt: "{{ q }}", grammar: "root = [0-9]"}
"#,
        expect![[r#"
            steps[1].generate.grammar: expected a GBNF grammar with a `root ::= ...` rule, found none
            steps[2].generate.grammar: expected a grammar or a JSON schema in `parse`, found both
            steps[3].judge.grammar: expected a GBNF grammar with a `root ::= ...` rule, found none"#]],
    );
}

/// Regression (issue 11): each of these passed `validate` and then failed the run (or
/// allocated until it aborted, for `n`).
#[test]
fn what_run_would_refuse_validate_reports_first() {
    check(
        r#"
name: t
llm: {backend: openai, base_url: "htp:/nowhere", model: m, max_concurrency: 0, timeout_s: -1, price: {prompt: -1, completion: 2}}
steps:
  - load: {path: topics.jsonl}
  - generate: {prompt: "{{ topic | lenght }}", into: question, n: 1000000000}
  - generate: {prompt: "{{ question }}", into: answer, max_tokens: 5000000000}
  - filter: {keep: "answer | wordcount > 3"}
"#,
        expect![[r#"
            llm.base_url: expected an http(s) base URL, found "htp:/nowhere": the scheme is "htp"
            llm.max_concurrency: max_concurrency must be at least 1, found 0
            llm.timeout_s: timeout_s must be a positive number of seconds, found -1
            llm.price.prompt: expected dollars per million tokens, 0 or more, found -1
            steps[2].generate.max_tokens: expected a whole number from 0 to 4294967295, found 5000000000
            steps[1].generate.prompt: unknown filter `lenght`; filters added to Jinja's: extract_answer, last_number, word_count, numbered, truncate_words, flatten, from_json, bleu, cosine, max_cosine
            steps[1].generate.n: expected a number from 1 to 1024, found 1000000000
            steps[3].filter.keep: unknown filter `wordcount` in `answer | wordcount > 3`"#]],
    );
}

/// Regression (issue 11): a number too large for any integer said "invalid type: integer ... as u128".
#[test]
fn a_number_too_large_for_any_integer_is_said_in_words() {
    check(
        "name: t\nllm: {backend: scripted}\nsteps:\n  - load: {path: topics.jsonl}\n  - generate: {prompt: x, into: q, max_tokens: 100000000000000000000}\n",
        expect!["steps[1].generate.max_tokens: expected a whole number from 0 to 18446744073709551615, found 100000000000000000000 (line 5 column 48)"],
    );
}

/// Regression (issue 11): a recipe saved with a UTF-8 byte-order mark was "more than one document".
#[test]
fn a_byte_order_mark_is_not_a_second_document() {
    let recipe = "\u{feff}name: t\nllm: {backend: scripted}\nsteps:\n  - load: {path: topics.jsonl}\n";
    check(recipe, expect!["ok"]);
}

/// Regression (issue 11): `/dev/zero`, a FIFO and a loop of symbolic links all said "file not
/// found"; a seed line that is not a JSON object only said which fields were available.
#[test]
fn files_that_cannot_be_read_as_seeds_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    std::fs::write(base.join("words.jsonl"), "\"just a string\"\n").unwrap();
    std::os::unix::fs::symlink(base.join("loop-b"), base.join("loop-a")).unwrap();
    std::os::unix::fs::symlink(base.join("loop-a"), base.join("loop-b")).unwrap();
    std::os::unix::fs::symlink(base.join("gone.jsonl"), base.join("dangling.jsonl")).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(base.join("pipe.jsonl")).status().unwrap().success());
    let problem = |path: &str, prompt: &str| {
        let recipe = format!(
            "name: t\nllm: {{backend: scripted}}\nsteps:\n  - load: {{path: {path:?}}}\n  - generate: {{prompt: {prompt:?}, into: q}}\n"
        );
        match retort_engine::Recipe::parse(&recipe, base, &retort_engine::Overrides::default()) {
            Ok(_) => "ok".to_string(),
            Err(problems) => {
                problems.iter().map(|p| p.to_string().replace(&base.display().to_string(), "PATH")).collect::<Vec<_>>().join("\n")
            }
        }
    };
    let cases = [
        ("/dev/zero", "x", expect!["steps[0].load.path: expected a regular file, found a character device: /dev/zero"]),
        ("pipe.jsonl", "x", expect!["steps[0].load.path: expected a regular file, found a named pipe (FIFO): PATH/pipe.jsonl"]),
        ("loop-a", "x", expect!["steps[0].load.path: PATH/loop-a is a loop of symbolic links; point it at a file"]),
        ("dangling.jsonl", "x", expect!["steps[0].load.path: PATH/dangling.jsonl is a symbolic link to a file that does not exist"]),
        ("missing.jsonl", "x", expect!["steps[0].load.path: file not found: PATH/missing.jsonl"]),
        (
            "words.jsonl",
            "{{ topic }}",
            expect![[
                r#"steps[1].generate.prompt: unknown variable `topic`; fields available here: text (the first line of PATH/words.jsonl is not a JSON object, so its value went into `text`; write each seed as {"field": value}, or set `text_field`)"#
            ]],
        ),
    ];
    for (path, prompt, expected) in cases {
        expected.assert_eq(&problem(path, prompt));
    }
}

/// Regression: `--model MODEL+lora:ADAPTER` (a round's model, given to an evaluation) was read
/// as a file name, so every evaluation of a trained round failed validation.
#[test]
fn a_model_string_with_an_adapter_names_the_model_and_the_adapter() {
    check(
        r#"
name: t
llm: {backend: local, model: "smollm2-135m+lora:no-such-adapter.gguf"}
steps:
  - load: {path: topics.jsonl}
  - generate: {prompt: "Say {{ topic }}.", into: said}
"#,
        expect!["llm.adapter: the LoRA adapter: reading local model file no-such-adapter.gguf: No such file or directory (os error 2)"],
    );
}

#[test]
fn iterate_rules() {
    check(
        r#"
name: t
llm: {backend: scripted}
steps:
  - load: {path: topics.jsonl}
  - iterate: {max_iterations: 0, until: "done", steps: [{load: {path: topics.jsonl}}, {train: {command: lora, data: {shape: sft, prompt: topic, response: topic}}}]}
"#,
        expect![[r#"
            steps[1].iterate.max_iterations: expected at least 1 iteration, found 0
            steps[1].iterate.steps[0].load: `load` cannot be inside `iterate`; its input is the records still looping
            steps[1].iterate.steps[1].train: `train` cannot be inside `iterate`; put it inside a `repeat` and train at the round's end"#]],
    );
}

#[test]
fn pools_from_the_stream_and_critics_say_what_goes_with_what() {
    check(
        r#"
name: t
llm: {backend: scripted}
steps:
  - load: {path: topics.jsonl}
  - sample: {pool_from: topic, group_by: kind, field: name, include: {key: k, value: v}, into: drawn}
  - sample: {pool_from: topic, items: [a], into: other}
  - fit: {text: topic, label: topic, train_from: topics.jsonl, eval: topics.jsonl}
  - fit: {text: topic, label: topic, eval: topics.jsonl, predict_into: guess, probability_into: p}
  - fit: {text: topic, eval: topics.jsonl}
"#,
        expect![[r#"
            steps[1].sample.group_by: a pool from the records is grouped by `group` alone: each item by the group of the records that gave it
            steps[1].sample.include: `include` reads the keys of a pool's items; a pool from the records has values only
            steps[1].sample.field: `field` takes a key of a pool's items; a pool from the records has values only
            steps[2].sample: give exactly one of `from`, `items` and `pool_from`
            steps[3].fit.label: the labels come from `train_from`'s `train_label` column; the stream's records are labelled, not learned from
            steps[4].fit.predict_into: labelling the records needs `train_from`: a classifier trained on the stream has let its records go by the time it is trained
            steps[4].fit.probability_into: labelling the records needs `train_from`: a classifier trained on the stream has let its records go by the time it is trained
            steps[4].fit.positive: `probability_into` and `positive` (the label whose probability it holds) go together
            steps[5].fit.label: give the field with each training example's label, or `train_from`: a labelled file to train on"#]],
    );
}

#[test]
fn a_required_key_that_a_constrained_schema_does_not_list_is_named() {
    check(
        r#"
name: t
llm: {backend: scripted}
steps:
  - load: {path: topics.jsonl}
  - generate:
      prompt: "{{ topic }}"
      into: spec
      parse: {json: {schema: {type: object, required: [openapi, paths], properties: {paths: {type: object}, info: {type: object, required: [title], properties: {version: {type: string}}}}}}}
  - generate:
      prompt: "{{ topic }}"
      into: turns
      parse: {json: {schema: {type: array, items: {type: object, required: [role, text], properties: {role: {type: string}}, additionalProperties: true}}}}
  - generate:
      prompt: "{{ topic }}"
      into: loose
      constrain: false
      parse: {json: {schema: {type: object, required: [openapi], properties: {paths: {type: object}}}}}
"#,
        expect![[r#"
            steps[1].generate.parse: the schema requires `openapi`, which its `properties` does not list; sampling held to the schema admits only the listed keys, so no answer could have it: add `openapi` to `properties`, or set `additionalProperties: true`
            steps[1].generate.parse: the schema at `/properties/info` requires `title`, which its `properties` does not list; sampling held to the schema admits only the listed keys, so no answer could have it: add `title` to `properties`, or set `additionalProperties: true`"#]],
    );
}
