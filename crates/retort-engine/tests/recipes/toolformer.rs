//! Toolformer's mechanics on the scripted backend: positions kept by the probability of the
//! call token, calls sampled and run on the calculator, and a call kept only when it lowers the
//! weighted loss of the next tokens by tau_f against no call and the call without its result.

use crate::common;

const RULES: &str = r#"
- when: '48/2 = \[$'
  logprob: -0.5
- when: ' \[$'
  logprob: -9.0
- when: '^\[Calculator\(48/2\) → 24\] '
  logprob: -0.1
- when: '^\[Calculator\(48\*2\) → 96\] '
  logprob: -2.4
- when: '^\[Calculator\((48/2|48\*2)\)\] '
  logprob: -3.0
- when: '^Natalia'
  logprob: -2.5
- when: 'A call goes right after'
  replies: ["[Calculator(48/2)]", "[Calculator(48*2)]"]
"#;

#[test]
fn a_call_is_kept_only_when_it_lowers_the_loss_of_what_follows() {
    let dir = tempfile::tempdir().unwrap();
    let texts = dir.path().join("texts.jsonl");
    std::fs::write(&texts, "{\"text\": \"Natalia sold 48/2 = 24 clips in May.\"}\n").unwrap();
    let set = format!("steps[0].load.path={}", texts.display());
    let ran = common::run_recipe("toolformer", RULES, &[], &[set.as_str()], None);
    let records = ran.rows("records");
    assert_eq!(records.len(), 1, "{:?} {:?}", ran.dropped(), ran.failed());
    let record = &records[0];
    assert_eq!(record["position"], 4, "the one boundary with p >= 0.05");
    assert_eq!(record["expression"], "48/2");
    assert_eq!(record["value"], "24");
    assert!((record["loss_with_result"].as_f64().unwrap() - 0.1).abs() < 1e-9, "{record:?}");
    assert!((record["gain"].as_f64().unwrap() - 2.4).abs() < 1e-9, "{record:?}");
    assert_eq!(ran.data()[0]["text"], "Natalia sold 48/2 = [Calculator(48/2) → 24] 24 clips in May.");
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.jsonl")), 1);
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.parquet")), 1);
    let reasons: Vec<String> = ran.dropped().iter().map(|row| row["reason"].as_str().unwrap().to_string()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("gain >= vars.tau_f")),
        "48*2 does not help: {reasons:?} {:?}",
        ran.dropped().iter().map(|r| r["record"]["expression"].clone()).collect::<Vec<_>>()
    );
    assert!(reasons.iter().any(|r| r.contains("duplicate")), "{reasons:?}");
}
