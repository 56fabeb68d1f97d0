//! Text normalisation applied before hashing or shingling.

use serde::{Deserialize, Serialize};

/// How text is normalised before it is hashed (exact dedup) or shingled (MinHash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NormalizeOptions {
    /// Lowercase the text (Unicode lowercase).
    pub lowercase: bool,
    /// Replace every run of whitespace with one space and trim both ends.
    pub collapse_whitespace: bool,
    /// Drop punctuation characters (Unicode general category P* and ASCII symbols).
    pub strip_punctuation: bool,
}

impl Default for NormalizeOptions {
    fn default() -> Self {
        Self { lowercase: true, collapse_whitespace: true, strip_punctuation: false }
    }
}

impl NormalizeOptions {
    /// Options that leave the text unchanged.
    pub const NONE: Self = Self { lowercase: false, collapse_whitespace: false, strip_punctuation: false };
    /// Lowercase, collapse whitespace and strip punctuation.
    pub const AGGRESSIVE: Self = Self { lowercase: true, collapse_whitespace: true, strip_punctuation: true };
}

/// Returns `text` normalised according to `opts`.
pub fn normalize(text: &str, opts: &NormalizeOptions) -> String {
    let mut out = String::with_capacity(text.len());
    normalize_into(text, opts, &mut out);
    out
}

/// Writes `text` normalised according to `opts` into `out` (cleared first), reusing its buffer.
pub fn normalize_into(text: &str, opts: &NormalizeOptions, out: &mut String) {
    out.clear();
    // Whether a space is owed before the next kept character (collapse mode).
    let mut pending_space = false;
    for c in text.chars() {
        if opts.strip_punctuation && is_punctuation(c) {
            continue;
        }
        if opts.collapse_whitespace && c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        if opts.lowercase {
            if c.is_ascii() {
                out.push(c.to_ascii_lowercase());
            } else {
                out.extend(c.to_lowercase());
            }
        } else {
            out.push(c);
        }
    }
}

fn is_punctuation(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation();
    }
    // Common non-ASCII punctuation: general punctuation block, CJK punctuation, and the
    // Latin-1 punctuation marks.
    matches!(c,
        '\u{00A1}' | '\u{00A7}' | '\u{00AB}' | '\u{00B6}' | '\u{00B7}' | '\u{00BB}' | '\u{00BF}'
        | '\u{2010}'..='\u{2027}' | '\u{2030}'..='\u{205E}' | '\u{3001}'..='\u{3003}'
        | '\u{3008}'..='\u{3011}' | '\u{FF01}'..='\u{FF0F}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_cases() {
        let cases: &[(&str, NormalizeOptions, &str)] = &[
            ("  Hello,   World!\n", NormalizeOptions::default(), "hello, world!"),
            ("  Hello,   World!\n", NormalizeOptions::AGGRESSIVE, "hello world"),
            ("  Hello,   World!\n", NormalizeOptions::NONE, "  Hello,   World!\n"),
            ("Ünïcode\tTEXT — “quoted”", NormalizeOptions::AGGRESSIVE, "ünïcode text quoted"),
            ("a - b", NormalizeOptions::AGGRESSIVE, "a b"),
            ("", NormalizeOptions::default(), ""),
            ("   ", NormalizeOptions::default(), ""),
        ];
        for (input, opts, want) in cases {
            assert_eq!(normalize(input, opts), *want, "input {input:?} opts {opts:?}");
        }
    }
}
