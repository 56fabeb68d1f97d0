//! The `regex` check: the field matches a pattern.

use async_trait::async_trait;
use regex::Regex;
use retort_core::Record;

use super::{field_text, Verdict, Verifier};
use crate::runtime::StageCx;

pub(crate) struct RegexMatch {
    field: String,
    regex: Regex,
}

impl RegexMatch {
    pub(crate) fn new(field: &str, pattern: &str) -> Result<RegexMatch, String> {
        let regex = Regex::new(pattern).map_err(|error| format!("pattern: {error}"))?;
        Ok(RegexMatch { field: field.to_string(), regex })
    }
}

#[async_trait]
impl Verifier for RegexMatch {
    async fn verify(&self, record: &Record, _cx: &StageCx) -> Result<Verdict, String> {
        let text = field_text(record, &self.field)?;
        let pass = self.regex.is_match(&text);
        let reason = if pass {
            format!("matches /{}/", self.regex.as_str())
        } else {
            format!("expected a match for /{}/, found {:?}", self.regex.as_str(), text.chars().take(60).collect::<String>())
        };
        Ok(Verdict { pass, reason, class: None })
    }
}
