//! Python call expressions, parsed as Python reads them: `pkg.f(1, x=[2, 'a'], y={'k': None})`.
//!
//! Function-calling benchmarks (BFCL, APIBench, API-Bank) write calls in Python syntax. This is
//! a tokenizer and a recursive-descent parser for the part of Python's expression grammar that
//! calls use: literals (strings with their prefixes and escapes, numbers, `True`/`False`/`None`),
//! lists, tuples, sets, dicts, unary signs, dotted names, subscripts and nested calls. Anything
//! else in an argument (`a + b`, a lambda) is kept as its source text, so one odd argument does
//! not make the whole call unreadable.

use std::fmt;

use serde_json::{json, Map, Value};

/// A parsed argument value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PyValue {
    None,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    List(Vec<PyValue>),
    Tuple(Vec<PyValue>),
    Set(Vec<PyValue>),
    Dict(Vec<(PyValue, PyValue)>),
    /// A name or attribute chain (`math.pi`, `x`).
    Name(String),
    /// A nested call.
    Call(Box<Call>),
    /// An expression this parser does not evaluate, as its source text (`2 + 3`, `x[0]`).
    Expr(String),
}

/// One call: its dotted name, positional and keyword arguments, in source order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Call {
    pub name: String,
    pub args: Vec<PyValue>,
    pub kwargs: Vec<(String, PyValue)>,
    /// The call's source text.
    pub text: String,
}

/// Where and why a text is not a call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParseError {
    /// Byte offset into the text.
    pub at: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.at, self.message)
    }
}

impl PyValue {
    /// The value as JSON: tuples and sets as arrays, dicts with string keys as objects,
    /// names and unevaluated expressions as their text.
    pub(crate) fn to_json(&self) -> Value {
        match self {
            PyValue::None => Value::Null,
            PyValue::Bool(b) => Value::Bool(*b),
            PyValue::Int(i) => i64::try_from(*i).map(Value::from).unwrap_or_else(|_| json!(*i as f64)),
            PyValue::Float(x) => serde_json::Number::from_f64(*x).map(Value::Number).unwrap_or(Value::Null),
            PyValue::Str(s) | PyValue::Name(s) | PyValue::Expr(s) => Value::String(s.clone()),
            PyValue::List(items) | PyValue::Tuple(items) | PyValue::Set(items) => Value::Array(items.iter().map(PyValue::to_json).collect()),
            PyValue::Dict(pairs) => {
                let mut map = Map::new();
                for (key, value) in pairs {
                    let key = match key {
                        PyValue::Str(s) => s.clone(),
                        other => other.to_json().to_string(),
                    };
                    map.insert(key, value.to_json());
                }
                Value::Object(map)
            }
            PyValue::Call(call) => Value::String(call.text.clone()),
        }
    }
}

impl Call {
    /// The keyword arguments as a JSON object (positional ones are not named here).
    pub(crate) fn kwargs_json(&self) -> Map<String, Value> {
        self.kwargs.iter().map(|(key, value)| (key.clone(), value.to_json())).collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Int(i128),
    Float(f64),
    /// Imaginary numbers and other numerals kept as text.
    Numeral(String),
    Str(String),
    Op(&'static str),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

const OPS: &[&str] = &[
    "**=", "//=", ">>=", "<<=", "...", "->", ":=", "**", "//", "<<", ">>", "<=", ">=", "==", "!=", "+=", "-=", "*=", "/=", "%=", "&=",
    "|=", "^=", "@=", "(", ")", "[", "]", "{", "}", ",", ":", ".", ";", "@", "=", "+", "-", "*", "/", "%", "&", "|", "^", "~", "<", ">",
];

/// Splits Python source into tokens; comments and line breaks are skipped (calls span lines).
fn tokenize(text: &str) -> Result<Vec<Token>, ParseError> {
    tokenize_with(text, false)
}

/// Tokens of a text, strictly, or leniently (a stray character or an unclosed quote is
/// skipped, as an error-tolerant parser would): model answers cut out of prose are rarely clean.
fn tokenize_with(text: &str, lenient: bool) -> Result<Vec<Token>, ParseError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() || c == b'\\' {
            i += 1;
            continue;
        }
        if c == b'#' {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        // A string, maybe with a prefix (r, b, u, f and their pairs).
        let prefix_len = string_prefix(&bytes[i..]);
        if let Some(prefix_len) = prefix_len {
            let prefix = text[i..i + prefix_len].to_ascii_lowercase();
            match read_string(text, i + prefix_len, prefix.contains('r')) {
                Ok((value, end)) => {
                    tokens.push(Token { tok: Tok::Str(value), start, end });
                    i = end;
                }
                Err(_) if lenient => i += prefix_len + 1,
                Err(error) => return Err(error),
            }
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let end = number_end(bytes, i);
            let raw: String = text[i..end].chars().filter(|&ch| ch != '_').collect();
            let tok = parse_number(&raw);
            tokens.push(Token { tok, start, end });
            i = end;
            continue;
        }
        if c == b'_' || c.is_ascii_alphabetic() || c >= 0x80 {
            let mut end = i;
            while end < bytes.len() {
                let ch = text[end..].chars().next().unwrap_or(' ');
                if ch == '_' || ch.is_alphanumeric() {
                    end += ch.len_utf8();
                } else {
                    break;
                }
            }
            if end == i {
                if lenient {
                    i += text[i..].chars().next().map_or(1, char::len_utf8);
                    continue;
                }
                return Err(ParseError { at: i, message: format!("unexpected character {:?}", text[i..].chars().next().unwrap_or(' ')) });
            }
            tokens.push(Token { tok: Tok::Name(text[i..end].to_string()), start, end });
            i = end;
            continue;
        }
        match OPS.iter().find(|op| text[i..].starts_with(**op)) {
            Some(op) => {
                tokens.push(Token { tok: Tok::Op(op), start, end: i + op.len() });
                i += op.len();
            }
            None if lenient => i += text[i..].chars().next().map_or(1, char::len_utf8),
            None => {
                let ch = text[i..].chars().next().unwrap_or(' ');
                return Err(ParseError { at: i, message: format!("unexpected character {ch:?}") });
            }
        }
    }
    Ok(tokens)
}

/// The length of a string prefix and its opening quote's position, when a string starts here.
fn string_prefix(bytes: &[u8]) -> Option<usize> {
    let mut n = 0;
    while n < 2 && n < bytes.len() && matches!(bytes[n].to_ascii_lowercase(), b'r' | b'b' | b'u' | b'f') {
        n += 1;
    }
    match bytes.get(n) {
        Some(b'\'' | b'"') => Some(n),
        _ => None,
    }
}

/// Reads a quoted string whose quote is at `at`; its value and the end offset.
fn read_string(text: &str, at: usize, raw: bool) -> Result<(String, usize), ParseError> {
    let quote = &text[at..at + 1];
    let triple = text[at..].starts_with(&quote.repeat(3));
    let delimiter = if triple { quote.repeat(3) } else { quote.to_string() };
    let mut i = at + delimiter.len();
    let mut value = String::new();
    while i < text.len() {
        if text[i..].starts_with(&delimiter) {
            return Ok((value, i + delimiter.len()));
        }
        let ch = text[i..].chars().next().unwrap_or(' ');
        if ch == '\n' && !triple {
            break;
        }
        if ch == '\\' && i + 1 < text.len() {
            let next = text[i + 1..].chars().next().unwrap_or(' ');
            if raw {
                value.push('\\');
                value.push(next);
                i += 1 + next.len_utf8();
                continue;
            }
            i += 1 + next.len_utf8();
            match next {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                'r' => value.push('\r'),
                '0' => value.push('\0'),
                '\\' | '\'' | '"' => value.push(next),
                '\n' => {}
                'x' | 'u' | 'U' => {
                    let digits = match next {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let code = text.get(i..i + digits).and_then(|hex| u32::from_str_radix(hex, 16).ok()).and_then(char::from_u32);
                    match code {
                        Some(decoded) => {
                            value.push(decoded);
                            i += digits;
                        }
                        None => {
                            value.push('\\');
                            value.push(next);
                        }
                    }
                }
                other => {
                    value.push('\\');
                    value.push(other);
                }
            }
            continue;
        }
        value.push(ch);
        i += ch.len_utf8();
    }
    Err(ParseError { at, message: "a string that is not closed".to_string() })
}

fn number_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    if bytes[i] == b'0' && matches!(bytes.get(i + 1), Some(b'x' | b'X' | b'o' | b'O' | b'b' | b'B')) {
        i += 2;
        while i < bytes.len() && (bytes[i].is_ascii_hexdigit() || bytes[i] == b'_') {
            i += 1;
        }
        return i;
    }
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_digit() || c == b'_' || c == b'.' {
            i += 1;
        } else if (c == b'e' || c == b'E') && i + 1 < bytes.len() {
            i += 1;
            if matches!(bytes[i], b'+' | b'-') {
                i += 1;
            }
        } else if c == b'j' || c == b'J' {
            return i + 1;
        } else {
            break;
        }
    }
    i
}

fn parse_number(raw: &str) -> Tok {
    let lower = raw.to_ascii_lowercase();
    let radix = [("0x", 16), ("0o", 8), ("0b", 2)].into_iter().find(|(prefix, _)| lower.starts_with(prefix));
    if let Some((prefix, radix)) = radix {
        return i128::from_str_radix(&lower[prefix.len()..], radix).map(Tok::Int).unwrap_or(Tok::Numeral(raw.to_string()));
    }
    if lower.ends_with('j') {
        return Tok::Numeral(raw.to_string());
    }
    if !lower.contains(['.', 'e']) {
        if let Ok(value) = lower.parse::<i128>() {
            return Tok::Int(value);
        }
    }
    lower.parse::<f64>().map(Tok::Float).unwrap_or(Tok::Numeral(raw.to_string()))
}

struct Parser<'a> {
    text: &'a str,
    tokens: &'a [Token],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|token| &token.tok)
    }

    fn at(&self) -> usize {
        self.tokens.get(self.pos).map(|token| token.start).unwrap_or(self.text.len())
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError { at: self.at(), message: message.into() })
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Some(Tok::Op(found)) if *found == op)
    }

    fn eat(&mut self, op: &str) -> bool {
        if self.is_op(op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, op: &str) -> Result<(), ParseError> {
        if self.eat(op) {
            Ok(())
        } else {
            let found = self.describe();
            self.error(format!("expected `{op}`, found {found}"))
        }
    }

    fn describe(&self) -> String {
        match self.tokens.get(self.pos) {
            Some(token) => format!("`{}`", &self.text[token.start..token.end]),
            None => "the end".to_string(),
        }
    }

    /// A dotted name: `a.b.c`.
    fn dotted(&mut self) -> Result<String, ParseError> {
        let mut name = match self.peek() {
            Some(Tok::Name(name)) => name.clone(),
            _ => {
                let found = self.describe();
                return self.error(format!("expected a name, found {found}"));
            }
        };
        self.pos += 1;
        while self.is_op(".") && matches!(self.tokens.get(self.pos + 1).map(|t| &t.tok), Some(Tok::Name(_))) {
            self.pos += 1;
            if let Some(Tok::Name(part)) = self.peek() {
                name.push('.');
                name.push_str(part);
            }
            self.pos += 1;
        }
        Ok(name)
    }

    /// A call whose name starts at the current token.
    fn call(&mut self) -> Result<Call, ParseError> {
        let start = self.at();
        let name = self.dotted()?;
        self.expect("(")?;
        self.arguments(name, start)
    }

    /// The arguments after `(`, up to and with `)`.
    fn arguments(&mut self, name: String, start: usize) -> Result<Call, ParseError> {
        let (mut args, mut kwargs) = (Vec::new(), Vec::new());
        while !self.is_op(")") {
            if self.peek().is_none() {
                return self.error(format!("the call to `{name}` is not closed"));
            }
            let keyword = match (self.peek(), self.tokens.get(self.pos + 1).map(|t| &t.tok)) {
                (Some(Tok::Name(key)), Some(Tok::Op("="))) => Some(key.clone()),
                _ => None,
            };
            if let Some(key) = keyword {
                self.pos += 2;
                let value = self.value()?;
                kwargs.push((key, value));
            } else {
                if self.is_op("*") || self.is_op("**") {
                    self.pos += 1;
                }
                let value = self.value()?;
                if !kwargs.is_empty() {
                    return self.error(format!("a positional argument after keyword arguments in `{name}`"));
                }
                args.push(value);
            }
            if !self.eat(",") && !self.is_op(")") {
                if self.peek().is_none() {
                    return self.error(format!("the call to `{name}` is not closed"));
                }
                let found = self.describe();
                return self.error(format!("expected `,` or `)` in the call to `{name}`, found {found}"));
            }
        }
        let end = self.tokens[self.pos].end;
        self.pos += 1;
        Ok(Call { name, args, kwargs, text: self.text[start..end].to_string() })
    }

    /// An argument value; an expression beyond literals and calls is kept as text.
    fn value(&mut self) -> Result<PyValue, ParseError> {
        let start_pos = self.pos;
        let start = self.at();
        let value = self.atom()?;
        // Anything that continues the expression (`+ 1`, `[0]`, `if x else y`) makes it an
        // expression kept as text.
        if self.peek().is_some() && !self.is_op(",") && !self.is_op(")") && !self.is_op("]") && !self.is_op("}") && !self.is_op(":") {
            self.pos = start_pos;
            return self.raw_expression(start);
        }
        Ok(value)
    }

    /// Skips a balanced expression up to `,` `)` `]` `}` or `:` at depth 0; its text.
    fn raw_expression(&mut self, start: usize) -> Result<PyValue, ParseError> {
        let mut depth = 0usize;
        let mut end = start;
        while let Some(token) = self.tokens.get(self.pos) {
            match token.tok {
                Tok::Op("(" | "[" | "{") => depth += 1,
                Tok::Op(")" | "]" | "}") if depth == 0 => break,
                Tok::Op(")" | "]" | "}") => depth -= 1,
                Tok::Op("," | ":") if depth == 0 => break,
                _ => {}
            }
            end = token.end;
            self.pos += 1;
        }
        if depth > 0 {
            return self.error("brackets that are not closed");
        }
        Ok(PyValue::Expr(self.text[start..end].to_string()))
    }

    fn atom(&mut self) -> Result<PyValue, ParseError> {
        let start = self.at();
        let Some(tok) = self.peek().cloned() else {
            return self.error("expected a value, found the end");
        };
        match tok {
            Tok::Int(value) => {
                self.pos += 1;
                Ok(PyValue::Int(value))
            }
            Tok::Float(value) => {
                self.pos += 1;
                Ok(PyValue::Float(value))
            }
            Tok::Numeral(text) => {
                self.pos += 1;
                Ok(PyValue::Expr(text))
            }
            Tok::Str(mut value) => {
                self.pos += 1;
                // Adjacent literals concatenate.
                while let Some(Tok::Str(next)) = self.peek() {
                    value.push_str(next);
                    self.pos += 1;
                }
                Ok(PyValue::Str(value))
            }
            Tok::Op("-") | Tok::Op("+") => {
                self.pos += 1;
                let negative = tok == Tok::Op("-");
                match self.atom()? {
                    PyValue::Int(value) => Ok(PyValue::Int(if negative { -value } else { value })),
                    PyValue::Float(value) => Ok(PyValue::Float(if negative { -value } else { value })),
                    _ => {
                        let end = self.tokens[self.pos - 1].end;
                        Ok(PyValue::Expr(self.text[start..end].to_string()))
                    }
                }
            }
            Tok::Op("[") => {
                self.pos += 1;
                let items = self.items("]")?;
                Ok(PyValue::List(items.0))
            }
            Tok::Op("(") => {
                self.pos += 1;
                let (items, trailing_comma) = self.items(")")?;
                if items.len() == 1 && !trailing_comma {
                    Ok(items.into_iter().next().unwrap_or(PyValue::None))
                } else {
                    Ok(PyValue::Tuple(items))
                }
            }
            Tok::Op("{") => {
                self.pos += 1;
                self.dict_or_set()
            }
            Tok::Name(name) => match name.as_str() {
                "True" => {
                    self.pos += 1;
                    Ok(PyValue::Bool(true))
                }
                "False" => {
                    self.pos += 1;
                    Ok(PyValue::Bool(false))
                }
                "None" => {
                    self.pos += 1;
                    Ok(PyValue::None)
                }
                _ => {
                    let name = self.dotted()?;
                    if self.eat("(") {
                        Ok(PyValue::Call(Box::new(self.arguments(name, start)?)))
                    } else {
                        Ok(PyValue::Name(name))
                    }
                }
            },
            Tok::Op(_) => {
                let found = self.describe();
                self.error(format!("expected a value, found {found}"))
            }
        }
    }

    /// Comma-separated values up to `close`; whether a comma came last.
    fn items(&mut self, close: &str) -> Result<(Vec<PyValue>, bool), ParseError> {
        let mut items = Vec::new();
        let mut trailing = false;
        while !self.eat(close) {
            if self.peek().is_none() {
                return self.error(format!("expected `{close}`, found the end"));
            }
            items.push(self.value()?);
            trailing = self.eat(",");
            if !trailing && !self.is_op(close) {
                let found = self.describe();
                return self.error(format!("expected `,` or `{close}`, found {found}"));
            }
        }
        Ok((items, trailing))
    }

    fn dict_or_set(&mut self) -> Result<PyValue, ParseError> {
        let mut pairs = Vec::new();
        let mut set = Vec::new();
        while !self.eat("}") {
            if self.peek().is_none() {
                return self.error("expected `}`, found the end");
            }
            let key = self.value()?;
            if self.eat(":") {
                pairs.push((key, self.value()?));
            } else {
                set.push(key);
            }
            if !self.eat(",") && !self.is_op("}") {
                let found = self.describe();
                return self.error(format!("expected `,` or `}}`, found {found}"));
            }
        }
        if !set.is_empty() && !pairs.is_empty() {
            return self.error("a dict and a set in one pair of braces");
        }
        Ok(if set.is_empty() { PyValue::Dict(pairs) } else { PyValue::Set(set) })
    }
}

/// Parses a text that is one call, a list or tuple of calls (`[f(x=1), g(y=2)]`), or calls
/// separated by `;` or line breaks: the whole text must be calls.
pub(crate) fn parse_calls(text: &str) -> Result<Vec<Call>, ParseError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser { text, tokens: &tokens, pos: 0 };
    if parser.peek().is_none() {
        return parser.error("no call");
    }
    let bracketed = if parser.eat("[") {
        Some("]")
    } else if parser.is_op("(") {
        parser.pos += 1;
        Some(")")
    } else {
        None
    };
    let mut calls = Vec::new();
    loop {
        if let Some(close) = bracketed {
            if parser.eat(close) {
                break;
            }
        } else if parser.peek().is_none() {
            break;
        }
        calls.push(parser.call()?);
        let separated = parser.eat(",") || parser.eat(";");
        if !separated {
            if let Some(close) = bracketed {
                parser.expect(close)?;
                break;
            }
        }
    }
    if parser.peek().is_some() {
        let found = parser.describe();
        return parser.error(format!("expected the end after the calls, found {found}"));
    }
    Ok(calls)
}

/// Parses `[call, call, ...]` and nothing else: a Python list whose elements are all calls,
/// separated by commas (how BFCL decodes an answer after wrapping it in brackets).
pub(crate) fn parse_call_list(text: &str) -> Result<Vec<Call>, ParseError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser { text, tokens: &tokens, pos: 0 };
    parser.expect("[")?;
    let mut calls = Vec::new();
    while !parser.eat("]") {
        if parser.peek().is_none() {
            return parser.error("expected `]`, found the end");
        }
        calls.push(parser.call()?);
        if !parser.eat(",") && !parser.is_op("]") {
            let found = parser.describe();
            return parser.error(format!("expected `,` or `]` after a call, found {found}"));
        }
    }
    if parser.peek().is_some() {
        let found = parser.describe();
        return parser.error(format!("expected the end after `]`, found {found}"));
    }
    Ok(calls)
}

/// Every call in a piece of Python code, outermost first in source order, nested calls after
/// the call that holds them (`m = torch.hub.load(repo, 'resnet50')` → `torch.hub.load`). Calls
/// inside strings are not calls; a call that does not parse is skipped, and so are stray
/// characters and unclosed quotes.
pub(crate) fn find_calls(code: &str) -> Vec<Call> {
    let Ok(tokens) = tokenize_with(code, true) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut pos = 0;
    while pos < tokens.len() {
        let starts_call = matches!(tokens[pos].tok, Tok::Name(_))
            && (pos == 0 || !matches!(tokens[pos - 1].tok, Tok::Op(".")))
            && !matches!(&tokens[pos].tok, Tok::Name(n) if is_keyword(n));
        if starts_call {
            let mut parser = Parser { text: code, tokens: &tokens, pos };
            if let Ok(name) = parser.dotted() {
                if parser.eat("(") {
                    let start = tokens[pos].start;
                    if let Ok(call) = parser.arguments(name, start) {
                        let nested = nested_calls(&call);
                        found.push(call);
                        found.extend(nested);
                        pos = parser.pos;
                        continue;
                    }
                }
            }
        }
        pos += 1;
    }
    found
}

fn is_keyword(name: &str) -> bool {
    matches!(name, "def" | "class" | "lambda" | "if" | "elif" | "while" | "for" | "in" | "not" | "and" | "or" | "return" | "import" | "from" | "as" | "with")
}

fn nested_calls(call: &Call) -> Vec<Call> {
    fn walk(value: &PyValue, out: &mut Vec<Call>) {
        match value {
            PyValue::Call(call) => {
                out.push((**call).clone());
                call.args.iter().for_each(|v| walk(v, out));
                call.kwargs.iter().for_each(|(_, v)| walk(v, out));
            }
            PyValue::List(items) | PyValue::Tuple(items) | PyValue::Set(items) => items.iter().for_each(|v| walk(v, out)),
            PyValue::Dict(pairs) => pairs.iter().for_each(|(k, v)| {
                walk(k, out);
                walk(v, out)
            }),
            _ => {}
        }
    }
    let mut out = Vec::new();
    call.args.iter().for_each(|v| walk(v, &mut out));
    call.kwargs.iter().for_each(|(_, v)| walk(v, &mut out));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Call {
        let mut calls = parse_calls(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(calls.len(), 1, "{text}");
        calls.remove(0)
    }

    #[test]
    fn literals_and_keywords() {
        let call = one(r#"math.hypot(4, y=-5.5, z=[1, (2, 3)], w={'a': None, "b": True}, s='it\'s', r=r'\d', t=1e3, h=0x1F, u=1_000)"#);
        assert_eq!(call.name, "math.hypot");
        assert_eq!(call.args, vec![PyValue::Int(4)]);
        let kw: Vec<(&str, Value)> = call.kwargs.iter().map(|(k, v)| (k.as_str(), v.to_json())).collect();
        assert_eq!(
            kw,
            vec![
                ("y", json!(-5.5)),
                ("z", json!([1, [2, 3]])),
                ("w", json!({"a": null, "b": true})),
                ("s", json!("it's")),
                ("r", json!("\\d")),
                ("t", json!(1000.0)),
                ("h", json!(31)),
                ("u", json!(1000)),
            ]
        );
    }

    #[test]
    fn lists_of_calls_and_statements() {
        let calls = parse_calls("[get_weather(city='Paris'), get_time(zone=\"CET\")]").unwrap();
        assert_eq!(calls.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["get_weather", "get_time"]);
        assert_eq!(parse_calls("f(a=1)\ng(b=2)").unwrap().len(), 2);
        assert_eq!(one("f()").kwargs, vec![]);
        assert_eq!(one("f(\n  a=1,\n)").kwargs, vec![("a".to_string(), PyValue::Int(1))]);
    }

    #[test]
    fn other_expressions_are_kept_as_text() {
        let call = one("f(a=2 + 3, b=x[0], c=math.pi, d=g(1))");
        assert_eq!(call.kwargs[0].1, PyValue::Expr("2 + 3".into()));
        assert_eq!(call.kwargs[1].1, PyValue::Expr("x[0]".into()));
        assert_eq!(call.kwargs[2].1, PyValue::Name("math.pi".into()));
        assert!(matches!(&call.kwargs[3].1, PyValue::Call(inner) if inner.name == "g" && inner.text == "g(1)"));
    }

    #[test]
    fn errors_say_where_and_what() {
        let cases = [
            ("f(a=1", "the call to `f` is not closed"),
            ("f(a=1) g", "expected `(`, found the end"),
            ("f(a='x)", "a string that is not closed"),
            ("f(a=1, 2)", "a positional argument after keyword arguments"),
            ("hello world", "expected `(`"),
            ("", "no call"),
        ];
        for (text, expected) in cases {
            let error = parse_calls(text).expect_err(text);
            assert!(error.message.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn finds_calls_in_code_but_not_in_strings() {
        let code = "import torch\nmodel = torch.hub.load('pytorch/vision', 'resnet50', pretrained=True)\nprint(\"f(x)\")\nmodel.eval()";
        let names: Vec<String> = find_calls(code).into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["torch.hub.load", "print", "model.eval"]);
        let nested: Vec<String> = find_calls("x = a(b(1), c=[d()])").into_iter().map(|c| c.name).collect();
        assert_eq!(nested, ["a", "b", "d"]);
        let cut = find_calls("\"model = torch.hub.load('pytorch/vision', 'resnet50') $");
        assert_eq!(cut.len(), 1, "an unclosed quote and a stray character are skipped");
        assert_eq!(cut[0].args, vec![PyValue::Str("pytorch/vision".into()), PyValue::Str("resnet50".into())]);
    }
}
