//! The `api_ast` check: Gorilla's AST sub-tree match of an API call against an API database, with hallucinations.
//!
//! As APIBench's evaluator (`ast_eval_th.py`) does it: the call is cut out of the answer (after
//! the first `api_call`, before `api_provider`, from two characters past the first `:` to the
//! last `)`; an answer without `api_call` is an error, `no_api_call`), parsed, and the database
//! is searched in order for the first API whose identifying argument values (those of its
//! arguments whose text holds `repo_or_dir` or `model`, single quotes stripped) all appear in
//! the text of the answer's last call of the same function. No such API is a
//! **hallucination**; the API found is then compared with the gold one: the same API is
//! `correct`, another of the gold's domain `same_domain` (which APIBench's rule also counts as
//! correct: `match: domain`), any other `wrong_api`. One difference: where the answer has no
//! call of the function at all, Gorilla's script matches against the last tree-sitter node it
//! visited (a bug its numbers carry); here the cut text as a whole is the candidate.

use std::path::Path;

use async_trait::async_trait;
use retort_core::Record;
use serde_json::Value;

use super::pycall::{self, Call, PyValue};
use super::{field_text, Verdict, Verifier};
use crate::runtime::StageCx;

/// What counts as a pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AstMatch {
    /// The API found is the gold API.
    #[default]
    Api,
    /// The API found has the gold API's domain (APIBench's TorchHub evaluator).
    Domain,
}

/// One API of the database: its call's function, the argument values that identify it, its domain.
#[derive(Debug, Clone)]
struct Api {
    function: String,
    identity: Vec<String>,
    domain: String,
    call: String,
}

pub(crate) struct ApiAst {
    field: String,
    gold: String,
    database: Vec<Api>,
    matching: AstMatch,
}

/// What marks an identifying argument of a database call (Gorilla's `get_args`).
const HUB_ARGUMENTS: &[&str] = &["repo_or_dir", "model"];

impl ApiAst {
    pub(crate) fn new(field: &str, gold: &str, database: &Path, matching: AstMatch) -> Result<ApiAst, String> {
        let text = std::fs::read_to_string(database).map_err(|e| format!("reading the API database {}: {e}", database.display()))?;
        let mut apis = Vec::new();
        for (n, line) in text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
            let row: Value = serde_json::from_str(line).map_err(|e| format!("{} line {}: {e}", database.display(), n + 1))?;
            let row = row.get("api_data").unwrap_or(&row);
            let Some(call) = row.get("api_call").and_then(Value::as_str) else {
                return Err(format!("{} line {}: no `api_call`", database.display(), n + 1));
            };
            let domain = row.get("domain").and_then(Value::as_str).unwrap_or_default().to_string();
            if let Some(api) = identify(call, domain) {
                apis.push(api);
            }
        }
        if apis.is_empty() {
            return Err(format!("{}: no API call could be parsed", database.display()));
        }
        Ok(ApiAst { field: field.to_string(), gold: gold.to_string(), database: apis, matching })
    }

    /// The first API of the database that the call names, as Gorilla's `ast_check` finds it:
    /// the candidate is the answer's last call of the API's function.
    fn find(&self, calls: &[Call], text: &str) -> Option<&Api> {
        self.database.iter().find(|api| {
            let candidate = calls.iter().rev().find(|call| call.name == api.function).map(|call| call.text.as_str()).unwrap_or(text);
            api.identity.iter().all(|value| candidate.contains(value.as_str()))
        })
    }
}

/// The function and identifying argument values of a database call: the values of the
/// keyword arguments whose `name=value` text holds `repo_or_dir` or `model` (`model_math` too,
/// as Gorilla's `get_args` reads them); for a call without such arguments, every string argument.
fn identify(call_text: &str, domain: String) -> Option<Api> {
    let call = pycall::find_calls(call_text).into_iter().next()?;
    let text = |value: &PyValue| match value {
        PyValue::Str(text) => Some(text.clone()),
        PyValue::Name(name) | PyValue::Expr(name) => Some(name.clone()),
        _ => None,
    };
    let mut identity: Vec<String> = call
        .kwargs
        .iter()
        .filter(|(key, value)| HUB_ARGUMENTS.iter().any(|marker| key.contains(marker) || text(value).is_some_and(|v| v.contains(marker))))
        .filter_map(|(_, value)| text(value))
        .collect();
    if identity.is_empty() {
        identity = call.args.iter().chain(call.kwargs.iter().map(|(_, v)| v)).filter_map(|value| match value {
            PyValue::Str(text) => Some(text.clone()),
            _ => None,
        }).collect();
    }
    identity.retain(|value| !value.is_empty());
    if identity.is_empty() {
        return None;
    }
    Some(Api { function: call.name.clone(), identity, domain, call: call.text.clone() })
}

/// The API call in an answer, as APIBench's `process_response` cuts it out: after `api_call`,
/// before `api_provider`, from two characters past the first `:` to the last `)`.
pub(crate) fn cut_api_call(output: &str) -> Option<String> {
    let (_, after) = output.split_once("api_call")?;
    let part = after.split("api_provider").next().unwrap_or(after);
    let start = part.find(':').map(|i| i + 2).unwrap_or(0).min(part.len());
    let end = part.rfind(')').map(|i| i + 1).unwrap_or(part.len().saturating_sub(1));
    if start >= end {
        return Some(String::new());
    }
    Some(part.get(start..end).unwrap_or_default().to_string())
}

#[async_trait]
impl Verifier for ApiAst {
    async fn verify(&self, record: &Record, _cx: &StageCx) -> Result<Verdict, String> {
        let text = field_text(record, &self.field)?;
        let gold_text = field_text(record, &self.gold)?;
        Ok(self.check(&text, &gold_text))
    }
}

impl ApiAst {
    pub(crate) fn check(&self, answer: &str, gold_call: &str) -> Verdict {
        let Some(call_text) = cut_api_call(answer) else {
            return Verdict::class(false, "no_api_call", format!("the answer has no `api_call`: {:?}", answer.chars().take(80).collect::<String>()));
        };
        let calls = pycall::find_calls(&call_text);
        let gold_calls = pycall::find_calls(gold_call);
        let gold = self.find(&gold_calls, gold_call);
        let Some(found) = self.find(&calls, &call_text) else {
            let shown = calls.last().map(|call| call.text.clone()).unwrap_or_else(|| call_text.chars().take(80).collect());
            return Verdict::class(false, "hallucination", format!("`{shown}` is no API of the database"));
        };
        let Some(gold) = gold else {
            return Verdict::class(false, "bad_gold", format!("the gold call `{gold_call}` is no API of the database"));
        };
        if std::ptr::eq(found, gold) {
            return Verdict::class(true, "correct", format!("`{}` is the expected API", found.call));
        }
        if found.domain == gold.domain {
            let pass = self.matching == AstMatch::Domain;
            return Verdict::class(pass, "same_domain", format!("`{}` is another API of the expected domain ({}); expected `{}`", found.call, found.domain, gold.call));
        }
        Verdict::class(false, "wrong_api", format!("`{}` is an API of {}, expected `{}` ({})", found.call, found.domain, gold.call, gold.domain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> ApiAst {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("apis.jsonl");
        let rows = [
            r#"{"domain": "Video Classification", "api_call": "torch.hub.load(repo_or_dir='facebookresearch/pytorchvideo', model='slow_r50', pretrained=True)"}"#,
            r#"{"domain": "Classification", "api_call": "torch.hub.load(repo_or_dir='pytorch/vision', model='resnet50', pretrained=True)"}"#,
            r#"{"domain": "Classification", "api_call": "torch.hub.load(repo_or_dir='pytorch/vision', model='resnet18', pretrained=True)"}"#,
        ];
        std::fs::write(&path, rows.join("\n")).unwrap();
        ApiAst::new("answer", "gold", &path, AstMatch::Api).unwrap()
    }

    #[test]
    fn the_apibench_classes() {
        let db = database();
        let gold = "torch.hub.load(repo_or_dir='pytorch/vision', model='resnet50', pretrained=True)";
        let cases = [
            (r#"{'domain': 'Classification', 'api_call': "model = torch.hub.load('pytorch/vision', 'resnet50', pretrained=True)", 'api_provider': 'PyTorch'}"#, "correct"),
            ("<<<api_call>>>: torch.hub.load(repo_or_dir='pytorch/vision', model='resnet50')\n<<<api_provider>>>: PyTorch", "correct"),
            ("api_call: model = torch.hub.load('pytorch/vision', 'resnet18', pretrained=True)", "same_domain"),
            ("api_call: torch.hub.load('facebookresearch/pytorchvideo', 'slow_r50')", "wrong_api"),
            ("api_call: torch.hub.load('pytorch/vision', 'resnet9000')", "hallucination"),
            ("api_call: I would use a ResNet.", "hallucination"),
            ("I would use torch.hub.load('pytorch/vision', 'resnet50').", "no_api_call"),
        ];
        for (answer, class) in cases {
            let verdict = db.check(answer, gold);
            assert_eq!(verdict.class.as_deref(), Some(class), "{answer}: {}", verdict.reason);
            assert_eq!(verdict.pass, class == "correct", "{answer}");
        }
        let lenient = ApiAst { matching: AstMatch::Domain, ..database() };
        assert!(lenient.check("api_call: torch.hub.load('pytorch/vision', 'resnet18')", gold).pass);
    }

    #[test]
    fn the_call_is_cut_as_apibench_cuts_it() {
        assert_eq!(cut_api_call("{'api_call': 'torch.hub.load(a, b)', 'api_provider': 'x'}").as_deref(), Some("'torch.hub.load(a, b)"));
        assert_eq!(cut_api_call("no marker f(x)"), None);
    }
}
