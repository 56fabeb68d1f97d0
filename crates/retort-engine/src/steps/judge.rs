//! `judge`: a model scores a record (pointwise) or compares two answers (pairwise); the verdict is parsed.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use regex::Regex;
use retort_core::{ChatRequest, Outcome, Record, SamplingParams};
use serde::Deserialize;
use serde_json::Value;

use crate::error::EngineError;
use crate::llm::Llm;
use crate::steps::StepSpec;
use crate::runtime::{Miss, StageCx};
use crate::steps::generate::{ask, lineage, Accept};
use crate::steps::prompt::{self, asks_a_model, SamplingSettings};
use crate::steps::{BuildCx, CheckCx, StepDef, TemplateSource};
use crate::runtime::{Built, RecordStep};

/// Pointwise scores or pairwise preferences.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JudgeMode {
    /// A number per record (`Score: 4`).
    #[default]
    Score,
    /// A preference between `a` and `b` (`A` or `B`); written as `a`, `b` or `tie`.
    Pairwise,
}

asks_a_model! {
    sampling;
    /// Settings of a `judge` step.
    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct JudgeConfig {
        /// `score` (default) or `pairwise`.
        #[serde(default)]
        pub mode: JudgeMode,
        /// The field the score (a number) or the preference (`a`, `b`, `tie`) is written to.
        #[serde(default = "default_into")]
        pub into: String,
        /// A regular expression whose group 1 is the score or the letter; a sensible default otherwise.
        #[serde(default)]
        pub pattern: Option<String>,
        /// The lowest and highest valid score; a score outside fails the record.
        #[serde(default)]
        pub scale: Option<[f64; 2]>,
        /// Judgments per record, averaged (pointwise) (Self-Rewarding averages three).
        #[serde(default = "one")]
        pub samples: usize,
        /// Pairwise: the field shown as answer A (the template sees it as `a`).
        #[serde(default)]
        pub a: Option<String>,
        /// Pairwise: the field shown as answer B (the template sees it as `b`).
        #[serde(default)]
        pub b: Option<String>,
        /// Pairwise: judge again with A and B swapped; disagreeing verdicts become `tie`.
        #[serde(default)]
        pub swap: bool,
        /// Keep every judgment, as a list of `{text, score}` (pointwise) or `{text, verdict}`.
        #[serde(default)]
        pub all_into: Option<String>,
        /// Keep the judge's whole text (the first judgment) in this field.
        #[serde(default)]
        pub reason_into: Option<String>,
    }
}

fn default_into() -> String {
    "score".to_string()
}

fn one() -> usize {
    1
}


impl StepDef for JudgeConfig {
    fn templates(&self) -> Vec<(String, TemplateSource)> {
        prompt::templates(self)
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        let extra: &[&str] = if self.mode == JudgeMode::Pairwise { &["a", "b"] } else { &[] };
        prompt::check(self, cx, extra);
        cx.llm("llm", self.llm.as_deref());
        if let Some(pattern) = &self.pattern {
            cx.regex("pattern", pattern);
        }
        if let Some(grammar) = &self.grammar {
            prompt::check_grammar(cx, grammar);
        }
        if self.samples == 0 {
            cx.error("samples", "expected at least 1 judgment, found 0");
        } else {
            cx.range("samples", self.samples as u64, 1, crate::limits::MAX_JUDGMENTS);
        }
        if let Some(max_tokens) = self.max_tokens {
            cx.range("max_tokens", u64::from(max_tokens), 1, crate::limits::MAX_TOKENS);
        }
        if let Some([low, high]) = self.scale {
            if low > high {
                cx.error("scale", format!("expected [low, high], found [{low}, {high}]"));
            }
        }
        if self.mode == JudgeMode::Pairwise {
            match (&self.a, &self.b) {
                (Some(a), Some(b)) => {
                    cx.read("a", a);
                    cx.read("b", b);
                }
                _ => cx.error("", "pairwise judging needs `a` and `b`: the fields holding the two answers"),
            }
        }
        cx.write(&self.into);
        for field in [&self.reason_into, &self.all_into].into_iter().flatten() {
            cx.write(field);
        }
    }

    fn build(&self, spec: &StepSpec, cx: &BuildCx) -> Result<Built, EngineError> {
        let llm = cx.llm(&spec.path, self.llm.as_deref())?;
        let pattern = match &self.pattern {
            Some(pattern) => Some(Regex::new(pattern).map_err(|error| EngineError::Step {
                step: spec.path.clone(),
                message: format!("pattern: {error}"),
            })?),
            None => None,
        };
        let concurrency = cx.concurrency(spec, Some(&llm));
        let constrain = self.constrain.unwrap_or(self.pattern.is_none() || self.grammar.is_some())
            && llm.current().capabilities().grammar;
        let grammar = constrain.then(|| self.grammar.clone().unwrap_or_else(|| verdict_grammar(self.mode, self.scale)));
        Ok(Built::Record(Arc::new(Judge { config: self.clone(), llm, pattern, grammar, concurrency })))
    }
}

struct Judge {
    config: JudgeConfig,
    llm: Arc<Llm>,
    pattern: Option<Regex>,
    /// The grammar the verdict is held to, where the backend can.
    grammar: Option<String>,
    concurrency: usize,
}

/// The longest reason, in characters, that a constrained judge writes before its verdict.
const REASON_CHARS: usize = 300;

/// The GBNF grammar a constrained judge answers in: one line of reason, then the verdict in the
/// shape the default patterns read.
pub(crate) fn verdict_grammar(mode: JudgeMode, scale: Option<[f64; 2]>) -> String {
    let reason = format!("reason ::= [^\\n]{{1,{REASON_CHARS}}}\n");
    match mode {
        JudgeMode::Pairwise => format!("root ::= reason \"\\nVerdict: [[\" [AB] \"]]\"\n{reason}"),
        JudgeMode::Score => {
            let whole = |value: f64| value.fract() == 0.0 && value.abs() < 1e6;
            let value = match scale {
                Some([low, high]) if whole(low) && whole(high) && high - low <= 20.0 => {
                    let choices: Vec<String> = (low as i64..=high as i64).map(|n| format!("\"{n}\"")).collect();
                    format!("value ::= {}\n", choices.join(" | "))
                }
                _ => "value ::= \"-\"? [0-9] [0-9]? [0-9]? (\".\" [0-9])?\n".to_string(),
            };
            format!("root ::= reason \"\\nScore: \" value\n{reason}{value}")
        }
    }
}

fn score_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(r"(?i)(?:score|rating|grade)\W{0,3}(?:of|is|:|=)?\W{0,3}(-?\d+(?:\.\d+)?)").expect("valid score pattern")
    })
}

fn verdict_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(r"(?:\[\[([AB])\]\]|(?i:winner|better|verdict|answer|choice|prefer\w*)[^\n]{0,30}?\b([AB])\b)")
            .expect("valid verdict pattern")
    })
}

/// Reads a pointwise score; the error says what was expected.
pub(crate) fn parse_score(text: &str, pattern: Option<&Regex>) -> Result<f64, String> {
    let regex = pattern.unwrap_or_else(|| score_pattern());
    let found = regex
        .captures_iter(text)
        .last()
        .and_then(|captures| captures.get(1).or_else(|| captures.get(0)).map(|m| m.as_str().to_string()))
        .or_else(|| {
            let trimmed = text.trim().trim_end_matches('.');
            trimmed.parse::<f64>().ok().map(|_| trimmed.to_string())
        });
    let shown: String = text.chars().take(60).collect();
    let found = found.ok_or_else(|| format!("expected a score such as `Score: 4`, found {shown:?}"))?;
    found.trim().parse::<f64>().map_err(|_| format!("expected a number as the score, found {found:?}"))
}

/// Reads a pairwise verdict as `a` or `b`.
pub(crate) fn parse_verdict(text: &str, pattern: Option<&Regex>) -> Result<&'static str, String> {
    let regex = pattern.unwrap_or_else(|| verdict_pattern());
    let letter = regex
        .captures_iter(text)
        .last()
        .and_then(|captures| captures.iter().skip(1).flatten().last().map(|m| m.as_str().to_uppercase()))
        .or_else(|| {
            let trimmed = text.trim().trim_start_matches(['(', '[']);
            let first = trimmed.chars().next()?;
            let second = trimmed.chars().nth(1);
            (matches!(first, 'A' | 'B') && second.is_none_or(|c| !c.is_alphanumeric())).then(|| first.to_string())
        });
    match letter.as_deref() {
        Some("A") => Ok("a"),
        Some("B") => Ok("b"),
        _ => Err(format!("expected a verdict `A` or `B`, found {:?}", text.chars().take(60).collect::<String>())),
    }
}

#[async_trait]
impl RecordStep for Judge {
    async fn apply(&self, mut record: Record, cx: &StageCx) -> Vec<Outcome> {
        let result = match self.config.mode {
            JudgeMode::Score => self.score(&mut record, cx).await,
            JudgeMode::Pairwise => self.compare(&mut record, cx).await,
        };
        match result {
            Ok(()) => vec![Outcome::Keep(record)],
            Err(miss) => vec![miss.outcome(record)],
        }
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }
}

impl Judge {
    fn accept(&self) -> Accept {
        self.config.accept()
    }

    fn request(&self, messages: Vec<retort_core::Message>, seed: u64) -> ChatRequest {
        ChatRequest {
            messages,
            params: SamplingParams { seed: Some(self.config.seed.unwrap_or(seed)), ..self.config.sampling() },
            json_schema: None,
            grammar: self.grammar.clone(),
            tools: Vec::new(),
            continue_final: false,
        }
    }

    async fn score(&self, record: &mut Record, cx: &StageCx) -> Result<(), Miss> {
        let mut messages = prompt::render(&self.config, record, cx, None).map_err(Miss::failed)?;
        let samples = self.config.samples;
        let mut scores = Vec::with_capacity(samples);
        let mut all = Vec::new();
        let mut first_text = None;
        for sample in 0..samples {
            // The last judgment takes the messages; earlier ones copy them.
            let sent = if sample + 1 == samples { std::mem::take(&mut messages) } else { messages.clone() };
            let request = self.request(sent, cx.seed(&record.id, sample));
            let (mut response, key) = ask(&self.llm, &request, cx, self.accept()).await?;
            let finish_reason = response.choices[0].finish_reason;
            let text = std::mem::take(&mut response.choices[0].text);
            let score = parse_score(&text, self.pattern.as_ref()).map_err(|reason| Miss::with_raw(reason, text.clone()))?;
            if let Some([low, high]) = self.config.scale {
                if score < low || score > high {
                    return Err(Miss::with_raw(format!("expected a score from {low} to {high}, found {score}"), text));
                }
            }
            if sample == 0 {
                record.lineage.push(lineage(&self.llm, cx, &self.config.into, request, key, Some(finish_reason)));
            }
            if self.config.all_into.is_some() {
                all.push(serde_json::json!({"text": &text, "score": score}));
            }
            if sample == 0 && self.config.reason_into.is_some() {
                first_text = Some(text);
            }
            scores.push(score);
        }
        if let Some(field) = &self.config.all_into {
            record.set(field.clone(), Value::Array(all));
        }
        let mean = scores.iter().sum::<f64>() / scores.len() as f64;
        record.set(self.config.into.clone(), serde_json::json!(mean));
        if let (Some(field), Some(text)) = (&self.config.reason_into, first_text) {
            record.set(field.clone(), Value::String(text));
        }
        Ok(())
    }

    async fn compare(&self, record: &mut Record, cx: &StageCx) -> Result<(), Miss> {
        let field = |name: &Option<String>| {
            let name = name.as_deref().unwrap_or_default();
            record.get(name).cloned().ok_or_else(|| Miss::failed(format!("field `{name}` is missing")))
        };
        let (a, b) = (field(&self.config.a)?, field(&self.config.b)?);
        let orders: &[(bool, usize)] = if self.config.swap { &[(false, 0), (true, 1)] } else { &[(false, 0)] };
        let mut verdicts = Vec::new();
        let mut all = Vec::new();
        let mut first_text = None;
        for &(swapped, sample) in orders {
            let (shown_a, shown_b) = if swapped { (&b, &a) } else { (&a, &b) };
            let base = cx.run.templates.context(record, cx.round);
            let context = minijinja::context! { a => minijinja::Value::from_serialize(shown_a), b => minijinja::Value::from_serialize(shown_b), ..base };
            let messages = prompt::render(&self.config, record, cx, Some(context)).map_err(Miss::failed)?;
            let request = self.request(messages, cx.seed(&record.id, sample));
            let (response, key) = ask(&self.llm, &request, cx, self.accept()).await?;
            let text = response.choices[0].text.clone();
            let finish_reason = response.choices[0].finish_reason;
            let verdict = parse_verdict(&text, self.pattern.as_ref()).map_err(|reason| Miss::with_raw(reason, text.clone()))?;
            let verdict = match (swapped, verdict) {
                (true, "a") => "b",
                (true, _) => "a",
                (false, verdict) => verdict,
            };
            if sample == 0 {
                record.lineage.push(lineage(&self.llm, cx, &self.config.into, request, key, Some(finish_reason)));
            }
            all.push(serde_json::json!({"text": text, "verdict": verdict}));
            first_text.get_or_insert(text);
            verdicts.push(verdict);
        }
        if let Some(field) = &self.config.all_into {
            record.set(field.clone(), Value::Array(all));
        }
        let verdict = if verdicts.iter().all(|verdict| *verdict == verdicts[0]) { verdicts[0] } else { "tie" };
        record.set(self.config.into.clone(), Value::String(verdict.to_string()));
        if let (Some(field), Some(text)) = (&self.config.reason_into, first_text) {
            record.set(field.clone(), Value::String(text));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_read() {
        let cases = [
            ("The response is relevant.\nScore: 4", Ok(4.0)),
            ("score of 3.5 overall", Ok(3.5)),
            ("**Score:** 5", Ok(5.0)),
            ("2", Ok(2.0)),
            ("I liked it", Err("expected a score")),
        ];
        for (text, expected) in cases {
            match (parse_score(text, None), expected) {
                (Ok(found), Ok(expected)) => assert_eq!(found, expected, "{text}"),
                (Err(found), Err(expected)) => assert!(found.contains(expected), "{found}"),
                (found, expected) => panic!("{text}: expected {expected:?}, found {found:?}"),
            }
        }
    }

    #[test]
    fn verdicts_are_read() {
        let cases = [
            ("Response A is more detailed. [[A]]", Ok("a")),
            ("The better response is B.", Ok("b")),
            ("(B) because it is shorter", Ok("b")),
            ("Verdict: A", Ok("a")),
            ("Both are fine", Err("expected a verdict")),
        ];
        for (text, expected) in cases {
            match (parse_verdict(text, None), expected) {
                (Ok(found), Ok(expected)) => assert_eq!(found, expected, "{text}"),
                (Err(found), Err(expected)) => assert!(found.contains(expected), "{found}"),
                (found, expected) => panic!("{text}: expected {expected:?}, found {found:?}"),
            }
        }
    }

    #[test]
    fn the_verdict_grammar_writes_what_the_default_patterns_read() {
        let cases = [
            (JudgeMode::Score, Some([1.0, 5.0]), "root ::= reason \"\\nScore: \" value\nreason ::= [^\\n]{1,300}\nvalue ::= \"1\" | \"2\" | \"3\" | \"4\" | \"5\"\n"),
            (JudgeMode::Score, Some([0.0, 0.5]), "value ::= \"-\"? [0-9] [0-9]? [0-9]? (\".\" [0-9])?\n"),
            (JudgeMode::Score, None, "value ::= \"-\"? [0-9]"),
            (JudgeMode::Pairwise, None, "root ::= reason \"\\nVerdict: [[\" [AB] \"]]\"\n"),
        ];
        for (mode, scale, expected) in cases {
            let grammar = verdict_grammar(mode, scale);
            assert!(grammar.contains(expected), "{mode:?} {scale:?}:\n{grammar}");
        }
        // What the grammar lets through parses.
        assert_eq!(parse_score("Clear and correct.\nScore: 4", None), Ok(4.0));
        assert_eq!(parse_verdict("B explains more.\nVerdict: [[B]]", None), Ok("b"));
    }
}
