//! Jinja templates and expressions over records, through minijinja.
//!
//! One [`Templates`] holds every template of a recipe, compiled once at build time. A record's
//! fields are the template's top-level variables, beside `id`, `vars` (the recipe's `vars:`)
//! and `round` (inside `repeat`).

use std::collections::BTreeSet;
use std::sync::Arc;

use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};
use retort_core::Record;

/// Names every template can use besides the record's fields.
pub(crate) const GLOBALS: &[&str] = &["id", "vars", "round", "record"];

/// The compiled templates of one recipe, shared by all its steps.
#[derive(Clone)]
pub(crate) struct Templates {
    env: Arc<Environment<'static>>,
    vars: Value,
}

/// Builds the environment in which a recipe's templates are compiled.
pub(crate) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(false);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_filter("extract_answer", extract_answer_filter);
    env.add_filter("last_number", |text: &str| last_number(text).map(Value::from).unwrap_or(Value::from(())));
    env.add_filter("word_count", |text: &str| text.split_whitespace().count());
    env.add_filter("numbered", numbered);
    env.add_filter("truncate_words", |text: &str, count: usize| text.split_whitespace().take(count).collect::<Vec<_>>().join(" "));
    env.add_filter("flatten", flatten);
    env.add_filter("from_json", |text: &str| {
        serde_json::from_str::<serde_json::Value>(text.trim()).map(|value| Value::from_serialize(&value)).unwrap_or(Value::from(()))
    });
    env.add_filter("bleu", |candidate: &str, reference: &str| bleu(candidate, reference));
    env.add_filter("head_lines", head_lines);
    env.add_filter("variance", variance);
    env.add_filter("elo", elo);
    #[cfg(feature = "agent")]
    env.add_filter("solution_answer", |text: &str| retort_agent::solution_answer(text).map(Value::from).unwrap_or(Value::from(())));
    #[cfg(feature = "agent")]
    env.add_function("toolbench_function", |tool: &str, api: &str| retort_agent::catalog::toolbench_function_name(tool, api));
    env.add_function("raise_exception", |message: String| -> Result<Value, Error> {
        Err(Error::new(ErrorKind::InvalidOperation, message))
    });
    env
}

impl Templates {
    /// Wraps a finished environment.
    pub(crate) fn new(env: Environment<'static>, vars: serde_json::Value) -> Templates {
        Templates { env: Arc::new(env), vars: Value::from_serialize(&vars) }
    }

    /// The recipe's `vars`.
    pub(crate) fn vars(&self) -> Value {
        self.vars.clone()
    }

    /// Renders the template registered under `name` for a record.
    pub(crate) fn render(&self, name: &str, record: &Record, round: Option<u32>) -> Result<String, Error> {
        let template = self.env.get_template(name)?;
        let rendered = template.render(self.context(record, round))?;
        Ok(rendered.trim().to_string())
    }

    /// Renders a template with an explicit context (for converse turns and judges).
    pub(crate) fn render_with(&self, name: &str, context: Value) -> Result<String, Error> {
        let template = self.env.get_template(name)?;
        Ok(template.render(context)?.trim().to_string())
    }

    /// Renders template text that is not registered (for example a command held in `vars`).
    pub(crate) fn render_str(&self, source: &str, context: Value) -> Result<String, Error> {
        Ok(self.env.render_str(source, context)?.trim().to_string())
    }

    /// Evaluates an expression for a record.
    pub(crate) fn eval(&self, expression: &Expr, record: &Record, round: Option<u32>) -> Result<Value, Error> {
        self.eval_with(expression, self.context(record, round))
    }

    /// Evaluates an expression with an explicit context. The expression was compiled once, with
    /// the recipe's templates (see [`register_expression`]); nothing is compiled per record.
    pub(crate) fn eval_with(&self, expression: &Expr, context: Value) -> Result<Value, Error> {
        let template = self.env.get_template(&expression.name)?;
        let captured = template.render_captured(context)?;
        Ok(captured.state().lookup(RESULT).unwrap_or(Value::UNDEFINED))
    }

    /// The context a record's templates see.
    pub(crate) fn context(&self, record: &Record, round: Option<u32>) -> Value {
        let fields = Value::from_serialize(&record.fields);
        minijinja::context! {
            id => record.id.as_str(),
            vars => self.vars.clone(),
            round => round,
            record => fields.clone(),
            ..fields
        }
    }
}

/// The variable a compiled expression's template sets to the expression's value.
const RESULT: &str = "__retort_expression_result";

/// An expression of a step, compiled once with the recipe's templates, by its name there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expr {
    /// The template the expression was compiled into (`expr:steps[3].filter.keep`).
    pub name: String,
    /// The expression as written, for messages.
    pub source: String,
}

impl Expr {
    /// The expression at `key` of the step at `path`.
    pub(crate) fn at(path: &str, key: &str, source: &str) -> Expr {
        Expr { name: expression_name(path, key), source: source.to_string() }
    }
}

impl std::fmt::Display for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

/// The name an expression of a step is compiled under.
pub(crate) fn expression_name(path: &str, key: &str) -> String {
    format!("expr:{path}.{key}")
}

/// Compiles an expression into the environment as a template that sets its value, so it is
/// compiled once per run and evaluated without compiling again; an expression that does not
/// compile is left out (the recipe's check reports it).
pub(crate) fn register_expression(env: &mut Environment<'static>, path: &str, key: &str, expression: &str) {
    let _ = env.add_template_owned(expression_name(path, key), format!("{{% set {RESULT} = ({expression}) %}}"));
}

/// The top-level variables a template uses that are not defined inside it.
pub(crate) fn template_variables(env: &Environment<'static>, name: &str) -> Result<BTreeSet<String>, Error> {
    let template = env.get_template(name)?;
    Ok(template.undeclared_variables(false).into_iter().collect())
}

/// The top-level variables an expression uses.
pub(crate) fn expression_variables(env: &Environment<'static>, expression: &str) -> Result<BTreeSet<String>, Error> {
    let compiled = env.compile_expression(expression)?;
    Ok(compiled.undeclared_variables(false).into_iter().collect())
}

/// The filters, tests and functions a compiled template calls that its environment does not
/// have, as sentences (`unknown filter `lenght``). minijinja resolves these names only when it
/// renders, so without this a misspelt filter passes validation and fails every record.
pub(crate) fn unknown_callables(env: &Environment<'static>, name: &str) -> Result<Vec<String>, Error> {
    use minijinja::machinery::{get_compiled_template, Instruction};
    let template = env.get_template(name)?;
    let compiled = get_compiled_template(&template);
    let mut wanted = BTreeSet::new();
    for instructions in std::iter::once(&compiled.instructions).chain(compiled.blocks.values()) {
        for index in 0..instructions.len() {
            match instructions.get(index as u32) {
                Some(Instruction::ApplyFilter(name, ..)) => wanted.insert(("filter", name.to_string())),
                Some(Instruction::PerformTest(name, ..)) => wanted.insert(("test", name.to_string())),
                Some(Instruction::CallFunction(name, ..)) => wanted.insert(("function", name.to_string())),
                _ => false,
            };
        }
    }
    let mut unknown = Vec::new();
    for (kind, name) in wanted {
        // Probe the environment itself: an existing one fails otherwise (arguments) or not at all.
        let (probe, missing) = match kind {
            "filter" => (format!("{{{{ x | {name} }}}}"), ErrorKind::UnknownFilter),
            "test" => (format!("{{{{ x is {name} }}}}"), ErrorKind::UnknownTest),
            _ => (format!("{{{{ {name}() }}}}"), ErrorKind::UnknownFunction),
        };
        if let Err(error) = env.render_str(&probe, minijinja::context! { x => "" }) {
            // A function may also be a variable the record provides (then it is not "unknown").
            if error.kind() == missing {
                unknown.push(format!("unknown {kind} `{name}`"));
            }
        }
    }
    Ok(unknown)
}

/// Whether a template value counts as true (Jinja truthiness).
pub(crate) fn truthy(value: &Value) -> bool {
    value.is_true()
}

/// Converts a template value to JSON for storing in a record.
pub(crate) fn to_json(value: &Value) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// The answer a text gives: after the last `####` or `The answer is`, else the last number.
pub fn extract_answer(text: &str) -> Option<String> {
    if let Some((_, tail)) = text.rsplit_once("####") {
        let answer = tail.lines().next().unwrap_or("").trim();
        if !answer.is_empty() {
            return Some(normalize_number(answer));
        }
    }
    let lower = text.to_lowercase();
    if let Some(index) = lower.rfind("the answer is") {
        let tail = &text[index + "the answer is".len()..];
        let tail = tail.trim_start_matches([':', ' ']);
        if let Some(number) = first_number(tail) {
            return Some(number);
        }
        let answer = tail.split(['\n', '.']).next().unwrap_or("").trim();
        if !answer.is_empty() {
            return Some(answer.to_string());
        }
    }
    last_number(text)
}

fn extract_answer_filter(text: &str, kwargs: Kwargs) -> Result<Value, Error> {
    let tag: Option<String> = kwargs.get("tag")?;
    kwargs.assert_all_used()?;
    let answer = match tag {
        Some(tag) => text.rsplit_once(tag.as_str()).map(|(_, tail)| normalize_number(tail.trim())),
        None => extract_answer(text),
    };
    Ok(answer.map(Value::from).unwrap_or(Value::from(())))
}

fn number_regex() -> &'static regex::Regex {
    static NUMBER: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    NUMBER.get_or_init(|| regex::Regex::new(r"-?\$?\d[\d,]*(?:\.\d+)?").expect("valid number pattern"))
}

/// The last number in a text, without `$` or thousands separators.
pub(crate) fn last_number(text: &str) -> Option<String> {
    number_regex().find_iter(text).last().map(|found| normalize_number(found.as_str()))
}

fn first_number(text: &str) -> Option<String> {
    number_regex().find(text).map(|found| normalize_number(found.as_str()))
}

/// `$1,200.50` → `1200.5`; `42.0` → `42`; anything else trimmed.
pub fn normalize_number(text: &str) -> String {
    let cleaned: String = text.trim().trim_end_matches('.').chars().filter(|c| !matches!(c, '$' | ',')).collect();
    match cleaned.parse::<f64>() {
        Ok(number) if number.is_finite() => {
            if number.fract() == 0.0 && number.abs() < 1e15 {
                format!("{}", number as i64)
            } else {
                format!("{number}")
            }
        }
        _ => text.trim().to_string(),
    }
}

/// The first `fraction` of a text's lines (rounded down), each with its newline: the prefix
/// of a solution that ToRA's output-space shaping keeps (`answer | head_lines(0.4)`).
fn head_lines(text: &str, fraction: f64) -> Result<String, Error> {
    if !(0.0..=1.0).contains(&fraction) {
        return Err(Error::new(ErrorKind::InvalidOperation, format!("head_lines takes a fraction from 0 to 1, found {fraction}")));
    }
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let keep = (lines.len() as f64 * fraction).floor() as usize;
    Ok(lines[..keep].concat())
}

/// One level of nesting taken off a list of lists (items that are not lists stay as they are).
/// The population variance of a list of numbers (none for an empty list or one with a
/// non-number): `judgments | map(attribute='score') | variance`.
fn variance(items: Vec<Value>) -> Value {
    let numbers: Option<Vec<f64>> = items.iter().map(|item| f64::try_from(item.clone()).ok()).collect();
    match numbers {
        Some(numbers) if !numbers.is_empty() => {
            let mean = numbers.iter().sum::<f64>() / numbers.len() as f64;
            Value::from(numbers.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / numbers.len() as f64)
        }
        _ => Value::from(()),
    }
}

/// Elo ratings of `players` from battles `[i, j, s]` (s: 1 when i won, 0 when j won, 0.5 a
/// tie), by the maximum-likelihood Bradley–Terry fit Meta-Rewarding uses, with a weak prior
/// that keeps an undefeated player finite. Gives `{ratings, best, worst}`: `best` the first
/// highest-rated index, `worst` the last lowest-rated, both none when every rating is equal.
fn elo(battles: Vec<Value>, players: usize) -> Result<Value, Error> {
    let mut results = Vec::new();
    for battle in &battles {
        let parts: Vec<Value> = battle.try_iter().map(|items| items.collect()).unwrap_or_default();
        let number = |index: usize| parts.get(index).and_then(|value| f64::try_from(value.clone()).ok());
        match (number(0), number(1), number(2)) {
            (Some(i), Some(j), Some(score))
                if i >= 0.0 && j >= 0.0 && (i as usize) < players && (j as usize) < players && (0.0..=1.0).contains(&score) =>
            {
                results.push((i as usize, j as usize, score));
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("elo: expected battles [i, j, score] with i and j below {players} and a score from 0 to 1, found {battle}"),
                ))
            }
        }
    }
    let ratings = bradley_terry(players, &results);
    let scale = 400.0 / std::f64::consts::LN_10;
    let elo: Vec<f64> = ratings.iter().map(|rating| 1000.0 + scale * rating).collect();
    let (mut best, mut worst) = (0, 0);
    for (index, rating) in elo.iter().enumerate() {
        if *rating > elo[best] + 1e-9 {
            best = index;
        }
        if *rating <= elo[worst] + 1e-9 {
            worst = index;
        }
    }
    let spread = elo.iter().cloned().fold(f64::MIN, f64::max) - elo.iter().cloned().fold(f64::MAX, f64::min);
    let (best, worst) =
        if players > 1 && spread > 1e-6 { (Value::from(best), Value::from(worst)) } else { (Value::from(()), Value::from(())) };
    let rounded: Vec<Value> = elo.iter().map(|rating| Value::from((rating * 100.0).round() / 100.0)).collect();
    Ok(minijinja::context! { ratings => rounded, best => best, worst => worst })
}

/// Bradley–Terry log-strengths (natural-log scale, mean 0) maximising the likelihood of the
/// battles `(i, j, s)` (s is i's share of the win), plus a Gaussian prior of variance 10 so
/// that a player who never lost stays finite; coordinate Newton steps on the concave
/// log-posterior.
fn bradley_terry(players: usize, battles: &[(usize, usize, f64)]) -> Vec<f64> {
    const PRIOR: f64 = 0.1;
    let mut rating = vec![0.0f64; players];
    for _ in 0..200 {
        let mut moved = 0.0f64;
        // One player at a time (Gauss–Seidel), a Newton step each, at most 1 in size.
        for player in 0..players {
            let (mut gradient, mut hessian) = (-PRIOR * rating[player], PRIOR);
            for &(i, j, score) in battles {
                if i == j || (i != player && j != player) {
                    continue;
                }
                let (other, won) = if i == player { (j, score) } else { (i, 1.0 - score) };
                let p = 1.0 / (1.0 + (rating[other] - rating[player]).exp());
                gradient += won - p;
                hessian += p * (1.0 - p);
            }
            let step = (gradient / hessian).clamp(-1.0, 1.0);
            rating[player] += step;
            moved = moved.max(step.abs());
        }
        if moved < 1e-10 {
            break;
        }
    }
    let mean = rating.iter().sum::<f64>() / players.max(1) as f64;
    rating.iter().map(|r| r - mean).collect()
}

fn flatten(items: Vec<Value>) -> Value {
    let mut out = Vec::new();
    for item in items {
        match item.try_iter() {
            Ok(inner) if item.kind() == minijinja::value::ValueKind::Seq => out.extend(inner),
            _ => out.push(item),
        }
    }
    Value::from(out)
}

/// Words and punctuation marks, lower-cased: the tokens BLEU counts.
fn bleu_tokens(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' {
            word.extend(c.to_lowercase());
        } else {
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word));
            }
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    tokens
}

/// Sentence BLEU-4 of `candidate` against one `reference` (uniform weights, brevity penalty,
/// add-one smoothing of the 2- to 4-gram precisions after Lin and Och, 2004), from 0 to 1.
/// Tokens are lower-cased words and punctuation marks.
pub(crate) fn bleu(candidate: &str, reference: &str) -> f64 {
    let candidate = bleu_tokens(candidate);
    let reference = bleu_tokens(reference);
    if candidate.is_empty() || reference.is_empty() {
        return if candidate.is_empty() && reference.is_empty() { 1.0 } else { 0.0 };
    }
    let mut log_sum = 0.0;
    for n in 1..=4usize {
        fn grams(tokens: &[String], n: usize) -> std::collections::HashMap<&[String], usize> {
            let mut counts = std::collections::HashMap::<&[String], usize>::new();
            for gram in tokens.windows(n) {
                *counts.entry(gram).or_default() += 1;
            }
            counts
        }
        let candidate_grams = grams(&candidate, n);
        let reference_grams = grams(&reference, n);
        let total: usize = candidate_grams.values().sum();
        let matched: usize =
            candidate_grams.iter().map(|(gram, count)| (*count).min(reference_grams.get(gram).copied().unwrap_or(0))).sum();
        let precision = if n == 1 {
            if matched == 0 {
                return 0.0;
            }
            matched as f64 / total as f64
        } else {
            (matched as f64 + 1.0) / (total as f64 + 1.0)
        };
        log_sum += precision.ln() / 4.0;
    }
    let (c, r) = (candidate.len() as f64, reference.len() as f64);
    let brevity = if c >= r { 1.0 } else { (1.0 - r / c).exp() };
    brevity * log_sum.exp()
}

fn numbered(items: Vec<Value>) -> String {
    items.iter().enumerate().map(|(index, item)| format!("{}. {}", index + 1, item)).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_lines_keeps_the_first_fraction_of_the_lines() {
        let text = "a\nb\nc\nd\ne";
        let cases = [(0.0, ""), (0.2, "a\n"), (0.5, "a\nb\n"), (0.8, "a\nb\nc\nd\n"), (1.0, "a\nb\nc\nd\ne")];
        for (fraction, expected) in cases {
            assert_eq!(head_lines(text, fraction).unwrap(), expected, "{fraction}");
        }
        assert!(head_lines(text, 1.5).unwrap_err().to_string().contains("from 0 to 1"));
    }

    #[test]
    fn bleu_is_one_for_the_same_text_and_falls_with_changes() {
        let text = "Returns the postal codes of a Turkish province given its plate number.";
        assert!((bleu(text, text) - 1.0).abs() < 1e-9);
        let near = bleu("Returns the postal codes of a Turkish province given its plate number (1 to 81).", text);
        let far = bleu("Lists movies playing near you.", text);
        assert!(near > 0.6 && near < 1.0, "{near}");
        assert!(far < 0.1, "{far}");
        assert_eq!(bleu("", "something"), 0.0);
    }

    #[test]
    fn elo_ranks_the_winner_first_and_the_loser_last() {
        let env = environment();
        let render = |text: &str| env.render_str(text, ()).unwrap();
        // 0 beats 1 and 2, 1 and 2 tie: 0 best, 2 the last of the lowest.
        let battles = "[[0, 1, 1], [0, 2, 1], [1, 2, 0.5]]";
        assert_eq!(render(&format!("{{% set e = {battles} | elo(3) %}}{{{{ e.best }}}} {{{{ e.worst }}}}")), "0 2");
        let ratings: Vec<f64> =
            render(&format!("{{{{ ({battles} | elo(3)).ratings | join(' ') }}}}")).split(' ').map(|x| x.parse().unwrap()).collect();
        assert!(ratings[0] > 1000.0 && (ratings[1] - ratings[2]).abs() < 1e-6 && ratings[1] < 1000.0, "{ratings:?}");
        assert!((ratings.iter().sum::<f64>() / 3.0 - 1000.0).abs() < 0.05, "{ratings:?}");
        // A cycle is a tie for all: no best, no worst.
        assert_eq!(
            render("{% set e = [[0, 1, 1], [1, 2, 1], [2, 0, 1]] | elo(3) %}{{ e.best is none }} {{ e.worst is none }}"),
            "True True"
        );
        // Against the Bradley–Terry fit: 3 wins in 4 gives a log-odds near ln 3, shrunk by the prior.
        let strengths = bradley_terry(2, &[(0, 1, 1.0), (0, 1, 1.0), (0, 1, 1.0), (0, 1, 0.0)]);
        let gap = strengths[0] - strengths[1];
        assert!(gap > 0.8 && gap < 3f64.ln(), "{gap}");
        let error = env.render_str("{{ [[0, 3, 1]] | elo(3) }}", ()).unwrap_err().to_string();
        assert!(error.contains("expected battles [i, j, score] with i and j below 3"), "{error}");
        assert_eq!(render("{{ [1, 2, 3] | variance | round(4) }}"), "0.6667");
        assert_eq!(render("{{ [] | variance is none }}"), "True");
    }

    #[test]
    fn lists_flatten_and_json_text_parses() {
        let env = environment();
        let flat = env.render_str("{{ [[1, 2], [3], 4] | flatten | list }}", ()).unwrap();
        assert_eq!(flat, "[1, 2, 3, 4]");
        let parsed = env.render_str("{{ ('{\"a\": [1, 2]}' | from_json).a[1] }}", ()).unwrap();
        assert_eq!(parsed, "2");
        assert_eq!(env.render_str("{{ 'not json' | from_json is none }}", ()).unwrap(), "True");
    }

    #[test]
    fn answers_are_extracted() {
        let cases = [
            ("so 3 + 4 = 7\n#### 7", Some("7")),
            ("#### $1,200", Some("1200")),
            ("The answer is 12.", Some("12")),
            ("The answer is: Paris.", Some("Paris")),
            ("first 3 then 5 apples", Some("5")),
            ("12.50 dollars", Some("12.5")),
            ("no digits here", None),
        ];
        for (text, expected) in cases {
            assert_eq!(extract_answer(text).as_deref(), expected, "{text}");
        }
    }

    #[test]
    fn records_render_with_strict_variables() {
        let mut env = environment();
        env.add_template_owned("t", "Q about {{ topic }} ({{ id }})").unwrap();
        env.add_template_owned("bad", "{{ missing }}").unwrap();
        let templates = Templates::new(env, serde_json::json!({}));
        let record = Record::new("3", serde_json::json!({"topic": "tides"}).as_object().unwrap().clone());
        assert_eq!(templates.render("t", &record, None).unwrap(), "Q about tides (3)");
        assert!(templates.render("bad", &record, None).is_err());
        let expression = Expr::at("steps[1].filter", "keep", "topic | length > 3");
        let mut env = environment();
        register_expression(&mut env, "steps[1].filter", "keep", &expression.source);
        let templates = Templates::new(env, serde_json::json!({}));
        assert!(truthy(&templates.eval(&expression, &record, None).unwrap()));
        let count = Expr::at("steps[1].map", "set.n", "[1, 2, 3] | length");
        let mut env = environment();
        register_expression(&mut env, "steps[1].map", "set.n", &count.source);
        assert_eq!(Templates::new(env, serde_json::json!({})).eval(&count, &record, None).unwrap(), Value::from(3));
    }
}
