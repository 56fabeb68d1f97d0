//! The bounds of numbers in a recipe, checked at validation so a run never starts with a
//! setting it cannot honour (a billion samples per record would allocate until it aborts).

/// Samples per record (`generate.n`).
pub(crate) const MAX_SAMPLES: u64 = 1024;
/// Tokens one answer may have (`max_tokens`).
pub(crate) const MAX_TOKENS: u64 = 131_072;
/// Judgments per record (`judge.samples`).
pub(crate) const MAX_JUDGMENTS: u64 = 64;
/// Turns of a dialogue or a game, steps of an agent, rounds of a loop, epochs of a fit.
pub(crate) const MAX_ITERATIONS: u64 = 10_000;

/// Rewrites serde's wording for a number out of range or of the wrong type into what was
/// expected and what was found (`invalid type: integer `1e20` as u128, expected u32` says
/// neither in words a recipe author uses).
pub(crate) fn friendly(message: &str) -> String {
    static NUMBER: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let pattern = NUMBER.get_or_init(|| {
        regex::Regex::new(
            r"^invalid (?:value|type): integer `(-?\d+)`(?: as [iu]128)?, expected (u8|u16|u32|u64|usize|i32|i64|a nonzero u\d+)",
        )
        .expect("valid pattern")
    });
    if let Some(captures) = pattern.captures(message) {
        let found = &captures[1];
        let expected = match &captures[2] {
            "u8" => "a whole number from 0 to 255".to_string(),
            "u16" => "a whole number from 0 to 65535".to_string(),
            "u32" => format!("a whole number from 0 to {}", u32::MAX),
            "i32" => format!("a whole number from {} to {}", i32::MIN, i32::MAX),
            "i64" => format!("a whole number from {} to {}", i64::MIN, i64::MAX),
            _ => format!("a whole number from 0 to {}", u64::MAX),
        };
        return format!("expected {expected}, found {found}");
    }
    for (rust, words) in
        [("u32", "a whole number"), ("u64", "a whole number"), ("usize", "a whole number"), ("f32", "a number"), ("f64", "a number")]
    {
        if let Some(prefix) = message.strip_suffix(&format!(", expected {rust}")) {
            if let Some(found) = prefix.strip_prefix("invalid type: ") {
                return format!("expected {words}, found {found}");
            }
        }
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_number_errors_say_what_was_expected() {
        let cases = [
            (
                "invalid type: integer `100000000000000000000` as u128, expected u32",
                "expected a whole number from 0 to 4294967295, found 100000000000000000000",
            ),
            ("invalid value: integer `-1`, expected usize", "expected a whole number from 0 to 18446744073709551615, found -1"),
            ("invalid type: string \"many\", expected usize", "expected a whole number, found string \"many\""),
            ("missing field `into`", "missing field `into`"),
        ];
        for (message, expected) in cases {
            assert_eq!(friendly(message), expected);
        }
    }
}
