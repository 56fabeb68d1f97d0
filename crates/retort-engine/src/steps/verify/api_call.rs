//! The `api_call` check: one call with exactly the expected API name and parameters (API-Bank's level-1 measure).
//!
//! The model writes `API-Request: [ApiName(key='value', ...)]` (or any form `calls.rs` reads);
//! the gold field holds `{"api_name": ..., "param_dict": {...}}`. Parameter values compare as
//! text (`5` and `'5'` are one value, as API-Bank's string-typed inputs are), and the sets of
//! parameter names must be equal.

use async_trait::async_trait;
use retort_core::Record;
use serde_json::Value;

use super::calls::read_calls;
use super::{field_text, Verdict, Verifier};
use crate::runtime::StageCx;

pub(crate) struct ApiCall {
    pub field: String,
    pub gold: String,
}

#[async_trait]
impl Verifier for ApiCall {
    async fn verify(&self, record: &Record, _cx: &StageCx) -> Result<Verdict, String> {
        let text = field_text(record, &self.field)?;
        let gold = match record.get(&self.gold) {
            Some(Value::Object(gold)) => gold.clone(),
            Some(Value::String(text)) => serde_json::from_str(text).map_err(|e| format!("`{}` is not a JSON object: {e}", self.gold))?,
            _ => return Err(format!("field `{}` (the expected call) is missing", self.gold)),
        };
        let name = gold.get("api_name").and_then(Value::as_str).ok_or_else(|| format!("`{}` has no `api_name`", self.gold))?;
        let params = gold.get("param_dict").and_then(Value::as_object).cloned().unwrap_or_default();
        Ok(check(&text, name, &params))
    }
}

fn as_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.trim().to_string(),
        other => other.to_string(),
    }
}

pub(crate) fn check(text: &str, name: &str, params: &serde_json::Map<String, Value>) -> Verdict {
    // The request after API-Bank's `API-Request:` marker, when there is one.
    let text = text.rsplit_once("API-Request:").map(|(_, after)| after).unwrap_or(text);
    let calls = match read_calls(text) {
        Ok(calls) => calls,
        Err(error) => return Verdict::class(false, "unparsable", error),
    };
    let Some(call) = calls.first() else {
        return Verdict::class(false, "no_call", format!("expected a call to `{name}`, found none"));
    };
    if call.name != name {
        return Verdict::class(false, "wrong_api", format!("expected `{name}`, found `{}`", call.name));
    }
    for (key, expected) in params {
        match call.args.get(key) {
            None => return Verdict::class(false, "wrong_parameters", format!("`{name}`: `{key}` is missing")),
            Some(found) if as_text(found) != as_text(expected) => {
                return Verdict::class(false, "wrong_parameters", format!("`{name}`: `{key}` should be {expected}, found {found}"));
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = call.args.keys().find(|key| !params.contains_key(*key)) {
        return Verdict::class(false, "wrong_parameters", format!("`{name}`: unexpected parameter `{extra}`"));
    }
    Verdict::class(true, "correct", format!("`{name}` with the expected parameters"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn name_and_parameters_must_be_exact() {
        let params = json!({"username": "foo", "password": "bar"});
        let params = params.as_object().unwrap();
        let cases = [
            ("API-Request: [GetUserToken(username='foo', password='bar')]", "correct"),
            ("[GetUserToken(password=\"bar\", username=\"foo\")]", "correct"),
            ("API-Request: [GetUserToken(username='foo')]", "wrong_parameters"),
            ("API-Request: [GetUserToken(username='foo', password='baz')]", "wrong_parameters"),
            ("API-Request: [GetUserToken(username='foo', password='bar', otp=1)]", "wrong_parameters"),
            ("API-Request: [Login(username='foo', password='bar')]", "wrong_api"),
            ("Please give me your password.", "no_call"),
        ];
        for (text, class) in cases {
            let verdict = check(text, "GetUserToken", params);
            assert_eq!(verdict.class.as_deref(), Some(class), "{text}: {}", verdict.reason);
        }
        let numbers = json!({"a": "5"});
        assert!(check("[Calc(a=5)]", "Calc", numbers.as_object().unwrap()).pass);
    }
}
