//! The `answer_match` check: the field's final answer equals the gold answer.

use async_trait::async_trait;
use retort_core::Record;

use super::{field_text, Extract, Verdict, Verifier};
use crate::runtime::StageCx;
use crate::template::{extract_answer, normalize_number};

pub(crate) struct AnswerMatch {
    pub field: String,
    pub gold: String,
    pub extract: Extract,
    pub tolerance: f64,
}

fn take(text: &str, extract: &Extract) -> Option<String> {
    match extract {
        Extract::Answer => extract_answer(text),
        Extract::None => Some(text.trim().to_string()).filter(|text| !text.is_empty()),
        Extract::Tagged(tag) => text.rsplit_once(tag.as_str()).map(|(_, tail)| normalize_number(tail.trim().lines().next().unwrap_or(""))),
    }
}

/// Whether two answers are the same: as numbers within `tolerance`, else as case-folded text.
pub(crate) fn same_answer(found: &str, expected: &str, tolerance: f64) -> bool {
    match (normalize_number(found).parse::<f64>(), normalize_number(expected).parse::<f64>()) {
        (Ok(found), Ok(expected)) => (found - expected).abs() <= tolerance,
        _ => found.trim().trim_end_matches('.').eq_ignore_ascii_case(expected.trim().trim_end_matches('.')),
    }
}

#[async_trait]
impl Verifier for AnswerMatch {
    async fn verify(&self, record: &Record, _cx: &StageCx) -> Result<Verdict, String> {
        let text = field_text(record, &self.field)?;
        let gold_text = field_text(record, &self.gold)?;
        let expected = take(&gold_text, &self.extract).unwrap_or_else(|| gold_text.trim().to_string());
        let Some(found) = take(&text, &self.extract) else {
            return Ok(Verdict { pass: false, reason: format!("expected the answer {expected}, found no answer"), class: None });
        };
        let pass = same_answer(&found, &expected, self.tolerance);
        let reason = if pass {
            format!("answer {found} matches")
        } else {
            format!("expected the answer {expected}, found {found}")
        };
        Ok(Verdict { pass, reason, class: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_compare() {
        assert!(same_answer("7", "7.0", 1e-6));
        assert!(same_answer("$1,200", "1200", 1e-6));
        assert!(same_answer("Paris.", "paris", 1e-6));
        assert!(!same_answer("8", "7", 1e-6));
        assert_eq!(take("so #### 18", &Extract::Answer).as_deref(), Some("18"));
        assert_eq!(take("A: x\nB", &Extract::Tagged("A:".into())).as_deref(), Some("x"));
    }
}
