//! Conveniences for verifiers: call a Python function on JSON arguments and read back its JSON
//! result, or run HumanEval-style tests against a solution.

use serde::{Deserialize, Serialize};

use crate::{ExecRequest, ExecResult, ExecStatus, Sandbox, SandboxError};

/// The outcome of [`Sandbox::run_tests`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestOutcome {
    /// The tests ran to the end without failing.
    pub passed: bool,
    /// The run itself (stdout has the completion marker line removed).
    pub result: ExecResult,
}

fn check_identifier(name: &str, what: &str) -> Result<(), SandboxError> {
    let ok = name.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_') && name.chars().all(|c| c.is_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(SandboxError::Invalid(format!("{what} must be a Python identifier, found {name:?}")))
    }
}

/// Appended to the code by [`Sandbox::call_function`]; `@...@` are filled in.
const CALL_HARNESS: &str = r#"

# --- retort call harness ---
import json as __retort_json, sys as __retort_sys
def __retort_default(o):
    if isinstance(o, (set, frozenset)):
        try:
            return sorted(o)
        except TypeError:
            return list(o)
    return repr(o)
__retort_args = __retort_json.loads(@ARGS@)
if isinstance(__retort_args, list):
    __retort_value = @FUNCTION@(*__retort_args)
elif isinstance(__retort_args, dict):
    __retort_value = @FUNCTION@(**__retort_args)
else:
    __retort_value = @FUNCTION@(__retort_args)
__retort_text = __retort_json.dumps(__retort_value, default=__retort_default)
__retort_sys.stdout.flush()
print('\n' + @MARKER@ + __retort_text)
"#;

/// A marker no program prints by chance: a fixed prefix and a random nonce.
fn marker(kind: &str) -> String {
    format!("__RETORT_{kind}_{:016x}__", rand::random::<u64>())
}

/// A Python string literal holding `s` (JSON string syntax is valid Python for what
/// serde_json emits: it never writes `\/`, and it writes non-ASCII characters as they are).
fn py_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string always encodes")
}

/// Removes the line that starts with `marker` from `stdout`; returns the rest of that line.
fn take_marker_line(stdout: &mut String, marker: &str) -> Option<String> {
    let start = stdout.rfind(marker)?;
    if start > 0 && stdout.as_bytes()[start - 1] != b'\n' {
        return None;
    }
    let end = stdout[start..].find('\n').map_or(stdout.len(), |i| start + i + 1);
    let payload = stdout[start + marker.len()..end].trim_end_matches('\n').to_string();
    stdout.replace_range(start..end, "");
    Some(payload)
}

impl Sandbox {
    /// Runs `code`, then calls `function_name` with `args` (a JSON array: positional
    /// arguments; a JSON object: keyword arguments; anything else: the one argument) and
    /// returns the run and the function's return value as JSON (sets and tuples become arrays,
    /// other unencodable values their `repr`). The value is `None` when the call did not
    /// complete (an exception, a timeout, a kill).
    pub async fn call_function(
        &self,
        code: &str,
        function_name: &str,
        args: &serde_json::Value,
    ) -> Result<(ExecResult, Option<serde_json::Value>), SandboxError> {
        check_identifier(function_name, "the function name")?;
        let mark = marker("RESULT");
        let args_text = serde_json::to_string(args).map_err(|e| SandboxError::Invalid(format!("encoding args: {e}")))?;
        let harness =
            CALL_HARNESS.replace("@ARGS@", &py_str(&args_text)).replace("@FUNCTION@", function_name).replace("@MARKER@", &py_str(&mark));
        let mut result = self.run(ExecRequest::new(format!("{code}{harness}"))).await?;
        let payload = take_marker_line(&mut result.stdout, &mark);
        if payload.is_some() && result.stdout.ends_with('\n') {
            // The harness printed a newline before the marker; remove it too.
            result.stdout.pop();
        }
        let value = match (result.status, payload) {
            (ExecStatus::Ok, Some(p)) => serde_json::from_str(&p).ok(),
            _ => None,
        };
        Ok((result, value))
    }

    /// HumanEval style: runs `solution`, then `test_code` (which defines `check(candidate)`),
    /// then `check(entry_point)`. Passes when that completes (a marker printed after
    /// `check` returns is found) and the program exits 0; an early `exit(0)` in the solution
    /// does not pass.
    pub async fn run_tests(&self, solution: &str, test_code: &str, entry_point: &str) -> Result<TestOutcome, SandboxError> {
        check_identifier(entry_point, "the entry point")?;
        let mark = marker("PASSED");
        let code = format!(
            "{solution}\n\n# --- tests ---\n{test_code}\n\n# --- retort test harness ---\ncheck({entry_point})\nprint('\\n' + {mark})\n",
            mark = py_str(&mark),
        );
        let mut result = self.run(ExecRequest::new(code)).await?;
        let seen = take_marker_line(&mut result.stdout, &mark).is_some();
        if seen && result.stdout.ends_with('\n') {
            result.stdout.pop();
        }
        let passed = seen && result.status == ExecStatus::Ok;
        Ok(TestOutcome { passed, result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_lines() {
        let cases = [
            ("a\n\nM[1]\n", Some("[1]"), "a\n\n"),
            ("M{}", Some("{}"), ""),
            ("xM[1]\n", None, "xM[1]\n"),
            ("nothing\n", None, "nothing\n"),
        ];
        for (input, want, rest) in cases {
            let mut s = input.to_string();
            assert_eq!(take_marker_line(&mut s, "M").as_deref(), want, "{input:?}");
            assert_eq!(s, rest, "{input:?}");
        }
    }

    #[test]
    fn identifiers() {
        for (name, ok) in [("f", true), ("_g2", true), ("2f", false), ("f()", false), ("", false), ("a.b", false)] {
            assert_eq!(check_identifier(name, "x").is_ok(), ok, "{name}");
        }
    }

    #[test]
    fn python_literal_of_json() {
        assert_eq!(py_str("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
    }
}
