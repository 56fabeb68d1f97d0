//! The calculator tool: a safe arithmetic evaluator (a recursive-descent parser over `f64`,
//! no code evaluation).

use async_trait::async_trait;
use retort_core::ToolSpec;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ToolError;
use crate::tool::Tool;

/// The calculator's configuration (`kind: calculator`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalculatorConfig {
    /// The tool's name (default `calculator`).
    #[serde(default)]
    pub name: Option<String>,
}

/// Evaluates arithmetic: `+ - * / ^ %`, parentheses, unary minus, the constants `pi` and `e`,
/// and the functions `sqrt, log (natural; log(x, base) for another base), log10, log2, exp,
/// sin, cos, tan, abs, round (round(x, digits)), floor, ceil, min, max`.
#[derive(Debug, Clone)]
pub struct Calculator {
    name: String,
}

impl Calculator {
    /// A calculator with this configuration.
    pub fn new(config: &CalculatorConfig) -> Calculator {
        Calculator { name: config.name.clone().unwrap_or_else(|| "calculator".into()) }
    }
}

impl Default for Calculator {
    fn default() -> Calculator {
        Calculator::new(&CalculatorConfig::default())
    }
}

#[async_trait]
impl Tool for Calculator {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.name.clone(),
            description: "Evaluates an arithmetic expression. Operators: + - * / ^ (power) % (remainder), parentheses; constants pi, e; functions sqrt, log (natural, or log(x, base)), log10, log2, exp, sin, cos, tan (radians), abs, round (round(x) or round(x, digits)), floor, ceil, min, max.".into(),
            parameters: json!({
                "type": "object",
                "properties": {"expression": {"type": "string", "description": "The expression, for example \"(3 + 4) * sqrt(16)\""}},
                "required": ["expression"],
                "additionalProperties": false
            }),
        }
    }

    async fn call(&self, arguments: &Value) -> Result<String, ToolError> {
        let expression = arguments["expression"].as_str().unwrap_or_default();
        evaluate(expression).map(format_number).map_err(ToolError::InvalidInput)
    }
}

const MAX_LEN: usize = 2000;
const MAX_DEPTH: usize = 64;

/// Evaluates an expression; the error says what was expected and where.
pub fn evaluate(expression: &str) -> Result<f64, String> {
    if expression.len() > MAX_LEN {
        return Err(format!("the expression is {} characters long; at most {MAX_LEN} are allowed", expression.len()));
    }
    let tokens = tokenize(expression)?;
    if tokens.is_empty() {
        return Err("the expression is empty".into());
    }
    let mut parser = Parser { tokens, pos: 0, depth: 0 };
    let value = parser.expr()?;
    if parser.pos < parser.tokens.len() {
        return Err(format!("unexpected {} after a complete expression", parser.tokens[parser.pos].describe()));
    }
    if !value.is_finite() {
        return Err("the result is not a finite number".into());
    }
    Ok(value)
}

/// Writes a number with at most 12 significant digits (`0.1 + 0.2` gives `0.3`, `2^10`
/// gives `1024`).
pub fn format_number(value: f64) -> String {
    if value == 0.0 {
        return "0".into();
    }
    let magnitude = value.abs().log10().floor() as i32;
    if !(-6..15).contains(&magnitude) {
        return format!("{value:e}");
    }
    let decimals = (11 - magnitude).max(0) as usize;
    let text = format!("{value:.decimals$}");
    let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_string() } else { text };
    if text == "-0" {
        "0".into()
    } else {
        text
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    Ident(String),
    Op(char),
    LParen,
    RParen,
    Comma,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Number(n) => format!("number {n}"),
            Token::Ident(s) => format!("name `{s}`"),
            Token::Op(c) => format!("operator `{c}`"),
            Token::LParen => "`(`".into(),
            Token::RParen => "`)`".into(),
            Token::Comma => "`,`".into(),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '0'..='9' | '.' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.' || chars[i] == '_') {
                    i += 1;
                }
                if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                    let mut j = i + 1;
                    if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                        j += 1;
                    }
                    if j < chars.len() && chars[j].is_ascii_digit() {
                        i = j;
                        while i < chars.len() && chars[i].is_ascii_digit() {
                            i += 1;
                        }
                    }
                }
                let literal: String = chars[start..i].iter().filter(|c| **c != '_').collect();
                let number = literal.parse::<f64>().map_err(|_| format!("`{literal}` is not a number"))?;
                tokens.push(Token::Number(number));
            }
            'a'..='z' | 'A'..='Z' | '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                tokens.push(Token::Ident(chars[start..i].iter().collect::<String>().to_ascii_lowercase()));
            }
            '+' | '-' | '/' | '%' | '^' => {
                tokens.push(Token::Op(c));
                i += 1;
            }
            '*' => {
                // `**` is accepted as power, as Python writes it.
                if chars.get(i + 1) == Some(&'*') {
                    tokens.push(Token::Op('^'));
                    i += 2;
                } else {
                    tokens.push(Token::Op('*'));
                    i += 1;
                }
            }
            '×' => {
                tokens.push(Token::Op('*'));
                i += 1;
            }
            '÷' => {
                tokens.push(Token::Op('/'));
                i += 1;
            }
            '(' | '[' => {
                tokens.push(Token::LParen);
                i += 1;
            }
            ')' | ']' => {
                tokens.push(Token::RParen);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            other => return Err(format!("unexpected character `{other}` at position {i}")),
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn expr(&mut self) -> Result<f64, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("the expression nests deeper than {MAX_DEPTH} levels"));
        }
        let mut value = self.term()?;
        while let Some(Token::Op(op @ ('+' | '-'))) = self.peek().cloned() {
            self.pos += 1;
            let rhs = self.term()?;
            value = if op == '+' { value + rhs } else { value - rhs };
        }
        self.depth -= 1;
        Ok(value)
    }

    fn term(&mut self) -> Result<f64, String> {
        let mut value = self.unary()?;
        while let Some(Token::Op(op @ ('*' | '/' | '%'))) = self.peek().cloned() {
            self.pos += 1;
            let rhs = self.unary()?;
            value = match op {
                '*' => value * rhs,
                _ if rhs == 0.0 => return Err(if op == '/' { "division by zero".into() } else { "remainder by zero".into() }),
                '/' => value / rhs,
                _ => value % rhs,
            };
        }
        Ok(value)
    }

    fn unary(&mut self) -> Result<f64, String> {
        match self.peek() {
            Some(Token::Op('-')) => {
                self.pos += 1;
                self.nested(|p| p.unary()).map(|v| -v)
            }
            Some(Token::Op('+')) => {
                self.pos += 1;
                self.nested(|p| p.unary())
            }
            _ => self.power(),
        }
    }

    fn nested(&mut self, f: impl FnOnce(&mut Parser) -> Result<f64, String>) -> Result<f64, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("the expression nests deeper than {MAX_DEPTH} levels"));
        }
        let value = f(self)?;
        self.depth -= 1;
        Ok(value)
    }

    /// `a ^ b ^ c` is `a ^ (b ^ c)`; `-2 ^ 2` is `-(2 ^ 2)`; `2 ^ -1` is allowed.
    fn power(&mut self) -> Result<f64, String> {
        let base = self.primary()?;
        if let Some(Token::Op('^')) = self.peek() {
            self.pos += 1;
            let exponent = self.nested(|p| p.unary())?;
            let value = base.powf(exponent);
            if value.is_nan() {
                return Err(format!("{} ^ {} is not a real number", format_number(base), format_number(exponent)));
            }
            return Ok(value);
        }
        Ok(base)
    }

    fn primary(&mut self) -> Result<f64, String> {
        let token = self.peek().cloned().ok_or("the expression ends where a number was expected")?;
        self.pos += 1;
        match token {
            Token::Number(n) => Ok(n),
            Token::LParen => {
                let value = self.expr()?;
                self.expect_rparen()?;
                Ok(value)
            }
            Token::Ident(name) => {
                if self.peek() == Some(&Token::LParen) {
                    self.pos += 1;
                    let mut args = Vec::new();
                    if self.peek() != Some(&Token::RParen) {
                        loop {
                            args.push(self.expr()?);
                            if self.peek() == Some(&Token::Comma) {
                                self.pos += 1;
                            } else {
                                break;
                            }
                        }
                    }
                    self.expect_rparen()?;
                    apply(&name, &args)
                } else {
                    match name.as_str() {
                        "pi" => Ok(std::f64::consts::PI),
                        "e" => Ok(std::f64::consts::E),
                        "tau" => Ok(std::f64::consts::TAU),
                        _ => Err(format!("unknown name `{name}`; only the constants pi, e and tau and function calls are allowed")),
                    }
                }
            }
            other => Err(format!("expected a number, a name or `(`, found {}", other.describe())),
        }
    }

    fn expect_rparen(&mut self) -> Result<(), String> {
        match self.peek() {
            Some(Token::RParen) => {
                self.pos += 1;
                Ok(())
            }
            Some(other) => Err(format!("expected `)`, found {}", other.describe())),
            None => Err("expected `)`, found the end of the expression".into()),
        }
    }
}

fn apply(name: &str, args: &[f64]) -> Result<f64, String> {
    let arity = |n: usize| -> Result<(), String> {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!("{name}() takes {n} argument{}, found {}", if n == 1 { "" } else { "s" }, args.len()))
        }
    };
    let positive = |x: f64| -> Result<f64, String> {
        if x > 0.0 {
            Ok(x)
        } else {
            Err(format!("{name}() of {} is undefined; it needs a positive number", format_number(x)))
        }
    };
    match name {
        "sqrt" => {
            arity(1)?;
            if args[0] < 0.0 {
                return Err(format!("sqrt() of the negative number {} is not a real number", format_number(args[0])));
            }
            Ok(args[0].sqrt())
        }
        "log" | "ln" if args.len() == 2 => {
            let base = positive(args[1])?;
            if base == 1.0 {
                return Err("log() to base 1 is undefined".into());
            }
            Ok(positive(args[0])?.ln() / base.ln())
        }
        "log" | "ln" => {
            arity(1)?;
            Ok(positive(args[0])?.ln())
        }
        "log10" => {
            arity(1)?;
            Ok(positive(args[0])?.log10())
        }
        "log2" => {
            arity(1)?;
            Ok(positive(args[0])?.log2())
        }
        "exp" => {
            arity(1)?;
            Ok(args[0].exp())
        }
        "sin" => {
            arity(1)?;
            Ok(args[0].sin())
        }
        "cos" => {
            arity(1)?;
            Ok(args[0].cos())
        }
        "tan" => {
            arity(1)?;
            Ok(args[0].tan())
        }
        "abs" => {
            arity(1)?;
            Ok(args[0].abs())
        }
        "floor" => {
            arity(1)?;
            Ok(args[0].floor())
        }
        "ceil" => {
            arity(1)?;
            Ok(args[0].ceil())
        }
        "round" if args.len() == 2 => {
            let digits = args[1];
            if digits.fract() != 0.0 || !(-15.0..=15.0).contains(&digits) {
                return Err("round(x, digits) needs a whole number of digits between -15 and 15".into());
            }
            let scale = 10f64.powi(digits as i32);
            Ok((args[0] * scale).round() / scale)
        }
        "round" => {
            arity(1)?;
            Ok(args[0].round())
        }
        "min" | "max" => {
            if args.is_empty() {
                return Err(format!("{name}() needs at least one argument"));
            }
            let init = if name == "min" { f64::INFINITY } else { f64::NEG_INFINITY };
            Ok(args.iter().fold(init, |acc, x| if name == "min" { acc.min(*x) } else { acc.max(*x) }))
        }
        _ => Err(format!(
            "unknown function `{name}`; available: sqrt, log, log10, log2, exp, sin, cos, tan, abs, round, floor, ceil, min, max"
        )),
    }
}
