//! Gorilla's mechanics on the scripted backend: pairs written from an API document, kept only
//! when Gorilla's AST matcher finds the document's API in the call (hallucinated and wrong APIs
//! dropped with the class), duplicates removed, the retriever-aware prompt; and the APIBench
//! and BFCL evaluations scoring scripted answers by their matchers.

use crate::common;

use serde_json::Value;

const PAIRS: &str = r#"
- when: 'new requests that this API answers'
  reply: |
    [{"instruction": "Our sports app needs to tag what happens in short video clips.", "api_call": "torch.hub.load('facebookresearch/pytorchvideo', 'slow_r50', pretrained=True)", "explanation": "A video classifier trained on Kinetics 400."},
     {"instruction": "Our sports app needs to tag what happens in short video clips.", "api_call": "torch.hub.load('facebookresearch/pytorchvideo', 'slow_r50')", "explanation": "The same again."},
     {"instruction": "Label the actions people perform in security camera footage.", "api_call": "torch.hub.load('facebookresearch/pytorchvideo', 'slow_r9000')", "explanation": "An invented model."},
     {"instruction": "Split street photos into regions of road, cars and people.", "api_call": "torch.hub.load('pytorch/vision', 'deeplabv3_resnet50', pretrained=True)", "explanation": "Another API."},
     {"instruction": "Short", "api_call": "torch.hub.load('facebookresearch/pytorchvideo', 'slow_r50')", "explanation": "Too short."}]
"#;

#[test]
fn pairs_are_kept_only_when_the_ast_matcher_finds_the_documented_api() {
    let ran = common::run_recipe("gorilla", PAIRS, &[], &[], Some(1));
    let records = ran.rows("records");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["api_name"], "slow_r50");
    assert_eq!(records[0]["call_class"], "correct");
    let reasons: Vec<String> = ran.dropped().iter().map(|row| row["reason"].as_str().unwrap().to_string()).collect();
    assert!(reasons.iter().any(|r| r.contains("no API of the database")), "a hallucinated API is dropped: {reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("deeplabv3_resnet50") && r.contains("expected")), "another API is dropped: {reasons:?}");
    assert!(reasons.iter().any(|r| r.starts_with("filter keep")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("duplicate")), "the repeated instruction is dropped: {reasons:?}");
    // The SFT row answers in APIBench's format, with the call.
    let data = ran.data();
    let messages = data[0]["messages"].as_array().unwrap();
    assert_eq!(messages[0]["content"], "Our sports app needs to tag what happens in short video clips.");
    let response: Value = serde_json::from_str(messages[1]["content"].as_str().unwrap()).unwrap();
    assert_eq!(response["api_call"], "torch.hub.load('facebookresearch/pytorchvideo', 'slow_r50', pretrained=True)");
    assert_eq!(response["domain"], "Video Classification");
    assert_eq!(response["api_provider"], "PyTorch");
}

#[test]
fn the_retriever_aware_variant_appends_the_retrieved_document() {
    let ran = common::run_recipe("gorilla", PAIRS, &[], &["vars.retriever=bm25"], Some(1));
    let data = ran.data();
    assert_eq!(data.len(), 1);
    let prompt = data[0]["messages"][0]["content"].as_str().unwrap();
    assert!(prompt.starts_with("Our sports app needs to tag"), "{prompt}");
    assert!(prompt.contains("Use this API documentation for reference: {"), "{prompt}");
    assert!(prompt.contains("\"api_call\""), "{prompt}");
}

const ANSWERS: &str = r#"
- when: 'classify sports activities in videos'
  reply: '{"domain": "Video Classification", "api_call": "torch.hub.load(''facebookresearch/pytorchvideo'', ''slow_r50'', pretrained=True)", "api_provider": "PyTorch"}'
- when: 'converting spoken language'
  reply: '{"domain": "Speech-To-Text", "api_call": "torch.hub.load(''snakers4/silero-models'', ''silero_nonexistent'')", "api_provider": "PyTorch"}'
- when: '.'
  reply: 'I am not sure.'
"#;

#[test]
fn the_apibench_evaluation_counts_correct_hallucinated_and_unmarked_answers() {
    let ran = common::run_file(&common::checkout("evals/gorilla/apibench.yaml"), ANSWERS, &[], Some(3));
    let verdicts: Vec<Value> = ran.column("verdict");
    assert_eq!(verdicts, ["correct", "hallucination", "no_api_call"]);
    let metrics: Value = serde_json::from_str(&std::fs::read_to_string(ran.out().join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["overall"]["records"], 3, "{metrics}");
    assert!((metrics["overall"]["accuracy"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9, "{metrics}");
    assert!((metrics["overall"]["hallucination"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9, "{metrics}");
    assert_eq!(metrics["by"]["none"]["records"], 3, "{metrics}");
    assert!(ran.report.notes.iter().any(|note| note.contains("accuracy 0.3333")), "{:?}", ran.report.notes);
    // With retrieval the prompt carries the document.
    let ran = common::run_file(&common::checkout("evals/gorilla/apibench.yaml"), ANSWERS, &["vars.mode=bm25"], Some(1));
    assert_eq!(ran.column("mode"), ["bm25"]);
}

const CALLS: &str = r#"
- when: 'area of a triangle with a base of 10'
  reply: 'calculate_triangle_area(base=10, height=5)'
- when: 'factorial of 5'
  reply: 'math.factorial(number=6)'
- when: '.'
  reply: 'It is a hypotenuse.'
"#;

#[test]
fn the_bfcl_evaluation_applies_the_ast_checker() {
    let ran = common::run_file(&common::checkout("evals/gorilla/bfcl.yaml"), CALLS, &[], Some(3));
    assert_eq!(ran.column("verdict"), ["correct", "wrong_value", "unparsable"]);
    let metrics: Value = serde_json::from_str(&std::fs::read_to_string(ran.out().join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["by"]["wrong_value"]["records"], 1, "{metrics}");
}
