//! ROUGE-L near-duplicates: the F-measure of the longest common subsequence of words, as
//! Self-Instruct filters new instructions against its pool.
//!
//! Tokens are those of the `rouge_score` package without stemming (lower-cased, runs of
//! `[a-z0-9]`), so scores match the paper's `RougeScorer(["rougeL"], use_stemmer=False)`.

use std::collections::HashMap;

use crate::error::DedupError;

/// Every kept text as word ids, compared in full with each new text (no sketch: ROUGE-L is
/// an order-sensitive measure, so there is no index to prune with). A check costs
/// O(kept × words²); a pool of 10,000 instructions of 20 words is about 4M cell updates.
#[derive(Debug, Clone)]
pub struct RougeIndex {
    threshold: f64,
    words: HashMap<String, u32>,
    kept: Vec<(u64, Vec<u32>)>,
    row: Vec<u32>,
}

impl RougeIndex {
    /// An empty index; a text whose ROUGE-L F-measure with a kept one is `threshold` or
    /// more is a duplicate (Self-Instruct keeps only those below 0.7).
    pub fn new(threshold: f64) -> Result<Self, DedupError> {
        if !(threshold > 0.0 && threshold <= 1.0) {
            return Err(DedupError::InvalidConfig {
                field: "threshold",
                expected: "a ROUGE-L F-measure in (0, 1]".into(),
                found: threshold.to_string(),
            });
        }
        Ok(Self { threshold, words: HashMap::new(), kept: Vec::new(), row: Vec::new() })
    }

    fn ids(&mut self, text: &str) -> Vec<u32> {
        word_ids(&mut self.words, text)
    }

    /// Keeps `text` under `id` unless it is too similar to a kept text; then returns that
    /// text's id and the score, and leaves the index unchanged. Of several, the most similar.
    pub fn insert_if_new(&mut self, id: u64, text: &str) -> Option<(u64, f64)> {
        let ids = self.ids(text);
        let nearest = self.nearest_ids(&ids);
        match nearest {
            Some((earlier, score)) if score >= self.threshold => Some((earlier, score)),
            _ => {
                self.kept.push((id, ids));
                None
            }
        }
    }

    /// Keeps `text` under `id`, however similar it is to what is kept (a pool's texts).
    pub fn insert(&mut self, id: u64, text: &str) {
        let ids = self.ids(text);
        self.kept.push((id, ids));
    }

    /// The kept text most similar to `text`, with its score; `None` when nothing is kept.
    pub fn nearest(&mut self, text: &str) -> Option<(u64, f64)> {
        let ids = self.ids(text);
        self.nearest_ids(&ids)
    }

    fn nearest_ids(&mut self, ids: &[u32]) -> Option<(u64, f64)> {
        let mut best: Option<(u64, f64)> = None;
        for (earlier, kept) in &self.kept {
            let score = f_measure(ids, kept, &mut self.row);
            if best.is_none_or(|(_, top)| score > top) {
                best = Some((*earlier, score));
            }
        }
        best
    }

    /// Number of kept texts.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// Whether nothing has been kept.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }
}

/// `rouge_score`'s tokens without stemming: lower-cased runs of ASCII letters and digits.
fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_ascii_alphanumeric()).filter(|token| !token.is_empty()).map(str::to_ascii_lowercase)
}

/// ROUGE-L F-measure of two token sequences: 2PR / (P + R) over their longest common
/// subsequence; 0 when either is empty.
pub fn rouge_l(a: &str, b: &str) -> f64 {
    let mut words: HashMap<String, u32> = HashMap::new();
    let (a, b) = (word_ids(&mut words, a), word_ids(&mut words, b));
    f_measure(&a, &b, &mut Vec::new())
}

/// The text's tokens as ids, numbering words not seen before in `words`.
fn word_ids(words: &mut HashMap<String, u32>, text: &str) -> Vec<u32> {
    tokens(text)
        .map(|token| {
            let next = words.len() as u32;
            *words.entry(token).or_insert(next)
        })
        .collect()
}

fn f_measure(a: &[u32], b: &[u32], row: &mut Vec<u32>) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let lcs = f64::from(lcs(a, b, row));
    if lcs == 0.0 {
        return 0.0;
    }
    let (precision, recall) = (lcs / a.len() as f64, lcs / b.len() as f64);
    2.0 * precision * recall / (precision + recall)
}

/// Length of the longest common subsequence, one row of the table at a time.
fn lcs(a: &[u32], b: &[u32], row: &mut Vec<u32>) -> u32 {
    row.clear();
    row.resize(b.len() + 1, 0);
    for &x in a {
        let mut diagonal = 0;
        for (j, &y) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if x == y { diagonal + 1 } else { above.max(row[j]) };
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_match_rouge_score() {
        // Values from rouge_score 0.1.2's RougeScorer(["rougeL"]).score(a, b).fmeasure.
        let cases = [
            ("the cat sat on the mat", "the cat sat on the mat", 1.0),
            ("the cat sat on the mat", "the cat lay on a mat", 4.0 / 6.0),
            ("Give me a list of fruits.", "give me a list of 5 vegetables", 2.0 * (5.0 / 6.0) * (5.0 / 7.0) / (5.0 / 6.0 + 5.0 / 7.0)),
            ("Write a poem", "Summarize the article", 0.0),
            ("", "anything", 0.0),
            ("Don't stop!", "don t STOP", 1.0),
        ];
        for (a, b, expected) in cases {
            let score = rouge_l(a, b);
            assert!((score - expected).abs() < 1e-9, "{a:?} vs {b:?}: {score} != {expected}");
        }
    }

    #[test]
    fn the_index_keeps_what_is_far_enough_from_everything_kept() {
        let mut index = RougeIndex::new(0.7).unwrap();
        let texts = [
            "Write a short poem about the sea.",
            "Write a short poem about the moon.",
            "Explain how a bicycle gear works.",
            "Write a poem about the sea.",
        ];
        let found: Vec<Option<u64>> =
            texts.iter().enumerate().map(|(id, text)| index.insert_if_new(id as u64, text).map(|(earlier, _)| earlier)).collect();
        // 6 of 7 words in order: 0.857, a duplicate; the bicycle shares nothing; 6 of 6 / 7: 0.92.
        assert_eq!(found, [None, Some(0), None, Some(0)]);
        assert_eq!(index.len(), 2);
        assert!(RougeIndex::new(0.0).is_err());
    }
}
