//! Grammar-constrained sampling that asks the grammar about one token, not the vocabulary.
//!
//! llama.cpp's grammar sampler, applied to a row of logits, decodes every token of the
//! vocabulary and runs it through the grammar's stacks: on Qwen2.5's 151,665 tokens that was
//! about a fifth of the worker's time in a constrained run. llama.cpp's own server does not do
//! that at every step (`common_sampler_sample` with `grammar_first = false`): it picks a token
//! without the grammar, asks the grammar about that token alone, and only when the grammar
//! rejects it applies the grammar to the whole row and picks again. [`Constrained`] is that
//! order.
//!
//! For greedy choice the token is the same as the grammar-first order's: the highest logit,
//! when the grammar allows it, is also the highest of the allowed ones. For sampling, the
//! distribution is llama.cpp's server's (a drawn token the grammar allows is kept; otherwise a
//! second draw from the allowed ones), which differs slightly from drawing from the allowed
//! ones at once. `RETORT_GRAMMAR_FIRST=1` restores the grammar-first order (llama.cpp's
//! `grammar_first = true`), for comparisons.

use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;

use crate::sample::NativeSampler;

/// Whether this worker applies grammars to the whole row first (`RETORT_GRAMMAR_FIRST=1`).
pub(crate) fn grammar_first() -> bool {
    std::env::var(crate::GRAMMAR_FIRST_ENV).is_ok_and(|value| value == "1")
}

/// A grammar and the sampler that picks among what it allows.
pub(crate) struct Constrained {
    grammar: LlamaSampler,
    free: Free,
    /// Steps at which the grammar rejected the freely picked token (a profile figure).
    pub(crate) resampled: u64,
    /// Steps in all.
    pub(crate) steps: u64,
}

/// How a token is picked without the grammar.
enum Free {
    /// Greedy choice or temperature sampling, computed in Rust as llama.cpp's samplers do.
    Native(NativeSampler),
    /// llama.cpp's chain of top-p, temperature and dist.
    Chain(LlamaSampler),
}

impl Constrained {
    /// `grammar` constrains; the token is picked greedily (`temperature <= 0`), or with top-p
    /// (when below 1), temperature and a draw seeded by `seed`.
    pub(crate) fn new(grammar: LlamaSampler, temperature: f32, top_p: f32, seed: u32) -> Constrained {
        let free = if temperature <= 0.0 || top_p >= 1.0 {
            Free::Native(NativeSampler::new(temperature, seed))
        } else {
            Free::Chain(LlamaSampler::chain_simple([
                LlamaSampler::top_p(top_p, 1),
                LlamaSampler::temp(temperature),
                LlamaSampler::dist(seed),
            ]))
        };
        Constrained { grammar, free, resampled: 0, steps: 0 }
    }

    /// The next token from a row of logits; the grammar has accepted it when this returns.
    pub(crate) fn sample(&mut self, logits: &[f32], scratch: &mut Vec<f32>) -> LlamaToken {
        self.steps += 1;
        let token = self.pick(logits, scratch);
        let mut single = LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 1.0, 0.0)], false);
        self.grammar.apply(&mut single);
        let token = if single.data[0].logit() == f32::NEG_INFINITY {
            self.resampled += 1;
            let mut row = candidates(logits);
            self.grammar.apply(&mut row);
            self.pick_from(row, scratch)
        } else {
            token
        };
        self.grammar.accept(token);
        token
    }

    /// The free sampler's token from a row of logits.
    fn pick(&mut self, logits: &[f32], scratch: &mut Vec<f32>) -> LlamaToken {
        match &mut self.free {
            Free::Native(sampler) => LlamaToken(sampler.sample(logits, scratch) as i32),
            Free::Chain(chain) => chain_pick(chain, candidates(logits)),
        }
    }

    /// The free sampler's token from a row the grammar has applied to (rejected tokens at
    /// minus infinity).
    fn pick_from(&mut self, row: LlamaTokenDataArray, scratch: &mut Vec<f32>) -> LlamaToken {
        match &mut self.free {
            Free::Native(sampler) => {
                let allowed: Vec<f32> = row.data.iter().map(LlamaTokenData::logit).collect();
                let index = sampler.sample(&allowed, scratch);
                // A draw of exactly 0 lands on the first token whatever its weight: never one
                // the grammar rejected.
                let index = if allowed[index] == f32::NEG_INFINITY {
                    allowed.iter().position(|&logit| logit > f32::NEG_INFINITY).unwrap_or(index)
                } else {
                    index
                };
                LlamaToken(index as i32)
            }
            Free::Chain(chain) => chain_pick(chain, row),
        }
    }
}

/// The token llama.cpp's chain selects from `row`.
fn chain_pick(chain: &mut LlamaSampler, mut row: LlamaTokenDataArray) -> LlamaToken {
    chain.apply(&mut row);
    row.selected_token().expect("a chain that ends in dist selects a token")
}

/// A row of logits as llama.cpp's candidate array, in token order.
fn candidates(logits: &[f32]) -> LlamaTokenDataArray {
    LlamaTokenDataArray::from_iter(
        logits.iter().enumerate().map(|(index, &logit)| LlamaTokenData::new(LlamaToken(index as i32), logit, 0.0)),
        false,
    )
}
