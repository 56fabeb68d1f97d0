//! ToRA's tool-integrated reasoning: one assistant answer written in pieces (rationale, a
//! ```` ```python ```` block, the program's output appended as an ```` ```output ```` block,
//! and on), each piece a continuation of the answer so far, until a piece ends without a new
//! program or the call budget is spent (the loop of ToRA's `api_with_func_call`).

use retort_core::{Backend, ChatRequest, Message, SamplingParams};
use retort_sandbox::{ExecRequest, ExecStatus, Sandbox};
use serde_json::json;

use super::{stop_reason_for, AgentConfig, StepStatus, StopReason, Trajectory, TrajectoryStep};
use crate::seed::derive_seed;
use crate::tool::clip;

/// Where the model stops so that the program's output can be written in (ToRA's stop words).
pub const OUTPUT_OPEN: &str = "```output\n";

/// Appended when the budget of program calls is spent (ToRA's words).
pub const CALL_LIMIT: &str = "\nReach max function call limit.";

/// The last ```` ```python ```` program of a text (ToRA's `extract_program`, `last_only`).
pub fn last_program(text: &str) -> Option<String> {
    let mut program: Option<String> = None;
    let mut inside = false;
    for line in text.split('\n') {
        if line.starts_with("```python") {
            program = Some(String::new());
            inside = true;
        } else if line.starts_with("```") {
            inside = false;
        } else if inside {
            let body = program.get_or_insert_with(String::new);
            body.push_str(line);
            body.push('\n');
        }
    }
    program.filter(|p| !p.trim().is_empty())
}

/// The answer of a solution: the last `\boxed{...}` (braces balanced), else the text after
/// "the answer is", else the last number after the last output block; `None` when there is
/// none of them (ToRA's `extract_answer`, in short).
pub fn solution_answer(text: &str) -> Option<String> {
    if let Some(start) = text.rfind("\\boxed{") {
        let body = &text[start + "\\boxed{".len()..];
        let mut depth = 1;
        for (i, c) in body.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(body[..i].trim().to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let lower = text.to_lowercase();
    if let Some(at) = lower.rfind("the answer is") {
        let rest = text[at + "the answer is".len()..].trim().trim_start_matches([':', '$']).trim();
        let answer: String = rest.split(['\n', '$']).next().unwrap_or("").trim().trim_end_matches('.').to_string();
        if !answer.is_empty() {
            return Some(answer);
        }
    }
    let tail = text.rfind("```output").map_or(text, |at| &text[at..]);
    let tail = tail.split_once("\n```").map_or(tail, |(_, after)| after);
    let mut last = None;
    let mut current = String::new();
    for c in tail.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() || (c == '.' && !current.is_empty()) || (c == '-' && current.is_empty()) {
            current.push(c);
        } else if c == ',' && !current.is_empty() {
            // thousands separators: 1,000
        } else {
            let number = current.trim_end_matches('.').trim_start_matches('-');
            if !number.is_empty() {
                last = Some(current.trim_end_matches('.').to_string());
            }
            current.clear();
        }
    }
    last
}

/// What a program printed, as ToRA shows it: the standard output when there is some, else
/// the error (the exception's last line), else `Done`.
fn program_output(result: &retort_sandbox::ExecResult) -> (String, StepStatus) {
    if !result.stdout.trim().is_empty() {
        let status = if result.status == ExecStatus::Ok { StepStatus::Ok } else { StepStatus::Failed };
        return (result.stdout.trim().to_string(), status);
    }
    if result.status == ExecStatus::Ok {
        return ("Done".to_string(), StepStatus::Ok);
    }
    let last_line = result.stderr.lines().rev().find(|line| !line.trim().is_empty()).map(str::trim);
    let report = match (last_line, &result.reason) {
        (Some(line), _) => line.to_string(),
        (None, Some(reason)) => reason.clone(),
        (None, None) => result.status.as_str().to_string(),
    };
    (report, StepStatus::Failed)
}

/// Runs ToRA's loop on a task. The answer starts as `prefix` (empty for a fresh solution; a
/// failed solution's start when a teacher completes it). Each request continues the answer
/// so far and stops at ```` ```output ````; a piece that ends with a closed program (and has
/// no `\boxed`) gets the program run in the sandbox and its output written in, and the loop
/// goes on, at most `config.max_steps` requests (ToRA's `max_func_call`, 4 in the paper).
/// The trajectory's messages are the task and the whole answer; each program is a step.
pub async fn run_tora(backend: &dyn Backend, sandbox: &Sandbox, config: &AgentConfig, task: Vec<Message>, prefix: &str) -> Trajectory {
    let mut run = Run { answer: start_of(prefix), steps: Vec::new(), errors: 0 };
    let calls = config.max_steps.max(1);
    let mut model_calls = 0;
    let mut stop_reason = StopReason::FinalAnswer;
    let mut backend_error = None;
    // A prefix that ends with a program not run yet has it run first, as the loop would.
    let mut program_waiting = ends_with_program(&run.answer);
    loop {
        if program_waiting {
            run.run_last_program(sandbox, config).await;
            if run.steps.len() as u32 >= calls {
                run.answer.push_str(CALL_LIMIT);
                stop_reason = StopReason::StepLimit;
                break;
            }
        }
        if model_calls >= calls {
            stop_reason = StopReason::StepLimit;
            break;
        }
        let mut messages = task.clone();
        let continue_final = !run.answer.is_empty();
        if continue_final {
            messages.push(Message::assistant(run.answer.clone()));
        }
        let request = ChatRequest {
            messages,
            params: SamplingParams {
                temperature: config.temperature,
                max_tokens: config.max_tokens,
                seed: Some(derive_seed(config.seed, &[u64::from(model_calls)])),
                stop: vec![OUTPUT_OPEN.to_string()],
                ..SamplingParams::default()
            },
            json_schema: None,
            grammar: None,
            tools: Vec::new(),
            continue_final,
        };
        model_calls += 1;
        let piece = match backend.chat(&request).await {
            Ok(response) => response.choices.into_iter().next().map(|choice| choice.text).unwrap_or_default(),
            Err(error) => {
                stop_reason = stop_reason_for(&error);
                backend_error = Some(error.to_string());
                break;
            }
        };
        // A stop string some servers leave in the text is cut as ToRA's stop word is.
        let piece = piece.split(OUTPUT_OPEN).next().unwrap_or_default().trim_end().to_string();
        run.answer.push_str(&piece);
        program_waiting = !piece.contains("boxed") && piece.ends_with("```") && last_program(&run.answer).is_some();
        if !program_waiting {
            break;
        }
    }
    let final_answer = if stop_reason == StopReason::FinalAnswer { solution_answer(&run.answer) } else { None };
    let mut messages = task;
    messages.push(Message::assistant(run.answer));
    Trajectory { steps: run.steps, final_answer, stop_reason, messages, errors: run.errors, model_calls, backend_error }
}

/// The answer so far and the programs run in it.
struct Run {
    answer: String,
    steps: Vec<TrajectoryStep>,
    errors: u32,
}

impl Run {
    /// Runs the answer's last program and writes its output in.
    async fn run_last_program(&mut self, sandbox: &Sandbox, config: &AgentConfig) {
        let Some(program) = last_program(&self.answer) else { return };
        let (output, status) = match sandbox.run(ExecRequest::new(program.clone())).await {
            Ok(result) => program_output(&result),
            Err(error) => (format!("the sandbox failed: {error}"), StepStatus::Failed),
        };
        if status != StepStatus::Ok {
            self.errors += 1;
        }
        let output = clip(&output, config.max_observation_chars);
        // The rationale of this step: the text after the previous output, before the program.
        let before = self.answer.rfind("```python").map_or("", |at| &self.answer[..at]);
        let thought = before.rsplit("```output").next().unwrap_or(before);
        let thought = thought.split_once("\n```\n").map_or(thought, |(_, after)| after).trim().to_string();
        self.answer.push_str(&format!("\n```output\n{}\n```\n", output.trim()));
        self.steps.push(TrajectoryStep {
            thought,
            action: "python".to_string(),
            arguments: json!({ "code": program }),
            observation: output,
            reward: None,
            status,
        });
    }
}

/// Where a continued answer starts: the prefix, less an ```` ```output ```` block it cuts
/// into (what a program printed is never the model's to write; the program is run again).
fn start_of(prefix: &str) -> String {
    let mut open = None;
    let mut position = 0;
    for line in prefix.split_inclusive('\n') {
        if line.starts_with("```output") {
            open = Some(position);
        } else if line.starts_with("```") && open.is_some() {
            open = None;
        }
        position += line.len();
    }
    match open {
        Some(at) => prefix[..at].trim_end().to_string(),
        None => prefix.to_string(),
    }
}

/// Whether a text ends with a closed ```` ```python ```` program that has no output yet.
fn ends_with_program(text: &str) -> bool {
    let trimmed = text.trim_end();
    let Some(open) = trimmed.rfind("```python") else { return false };
    trimmed.ends_with("```") && trimmed.len() > open + "```python".len() + 3 && !trimmed[open..].contains("```output")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_program_is_the_one_run() {
        let text = "Let's see.\n```python\nx = 1\nprint(x)\n```\n```output\n1\n```\nAgain:\n```python\nprint(2 + 2)\n```";
        assert_eq!(last_program(text).as_deref(), Some("print(2 + 2)\n"));
        assert_eq!(last_program("no code here"), None);
        assert_eq!(last_program("```python\n\n```"), None, "an empty block is no program");
    }

    #[test]
    fn a_prefix_never_ends_inside_a_program_output() {
        let solution = "Add.\n```python\nprint(1 + 1)\n```\n```output\n2\n```\nSo 2.";
        assert_eq!(start_of("Add.\n```python\nprint(1 + 1)\n```\n```output\n"), "Add.\n```python\nprint(1 + 1)\n```");
        assert_eq!(start_of("Add.\n```python\nprint(1 + 1)\n```\n```output\n2\n"), "Add.\n```python\nprint(1 + 1)\n```");
        assert_eq!(start_of(solution), solution, "a closed output block stays");
        assert!(ends_with_program("Add.\n```python\nprint(1 + 1)\n```"));
        assert!(!ends_with_program(solution));
        assert!(!ends_with_program("Add.\n```python\nprint(1 + 1)\n"), "an open program is the model's to finish");
    }

    #[test]
    fn answers_come_from_boxed_then_words_then_the_last_number() {
        let cases = [
            ("so the answer is $\\boxed{\\frac{1}{2}}$.", Some("\\frac{1}{2}")),
            ("The total is $\\boxed{1,000}$ dollars", Some("1,000")),
            ("Thus the answer is 42.", Some("42")),
            ("```output\n17\n```\nShe has 17 apples left, out of 20 at first? No: 18.", Some("18")),
            ("```output\n3.50\n```\nIt costs $3.50.", Some("3.50")),
            ("It went down by -4 degrees", Some("-4")),
            ("no number at all", None),
        ];
        for (text, expected) in cases {
            assert_eq!(solution_answer(text).as_deref(), expected, "{text}");
        }
    }
}
