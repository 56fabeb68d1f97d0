//! Temperature sampling and greedy choice in Rust, operation for operation as llama.cpp's
//! `temp`, `dist` and `greedy` samplers do them, so that the rows of one decode step can be
//! sampled on several threads while giving the token llama.cpp's chain gives for the seed.
//!
//! llama.cpp's `dist` draws with C++'s `std::mt19937` and libstdc++'s
//! `uniform_real_distribution<double>` (two 32-bit draws per number); [`Mt19937`] and
//! [`Mt19937::canonical`] are those. The softmax is computed in the same order and the same
//! precisions (`f32` exponentials, an `f64` sum), and the same cumulative walk picks the token.
//! Top-p still goes through llama.cpp's own sampler chain; grammars pick with these samplers
//! (`crate::constrained`).

/// How a job picks its next token when no grammar or top-p applies.
#[derive(Debug, Clone)]
pub(crate) enum NativeSampler {
    /// The highest logit; the first of equal ones.
    Greedy,
    /// Logits divided by the temperature, then one draw from their softmax.
    Temperature { temperature: f32, rng: Box<Mt19937> },
}

impl NativeSampler {
    /// The sampler llama.cpp's chain `[temp(t), dist(seed)]` or `[greedy]` would be.
    pub(crate) fn new(temperature: f32, seed: u32) -> Self {
        if temperature <= 0.0 {
            NativeSampler::Greedy
        } else {
            NativeSampler::Temperature { temperature, rng: Box::new(Mt19937::new(seed)) }
        }
    }

    /// The next token from a row of logits; `scratch` is reused between calls.
    pub(crate) fn sample(&mut self, logits: &[f32], scratch: &mut Vec<f32>) -> usize {
        match self {
            NativeSampler::Greedy => greedy(logits),
            NativeSampler::Temperature { temperature, rng } => {
                if logits.len() < 2 {
                    // llama.cpp still draws once, to keep its generator aligned.
                    let _ = rng.canonical();
                    return 0;
                }
                scratch.clear();
                scratch.reserve(logits.len());
                let mut max = f32::NEG_INFINITY;
                for &logit in logits {
                    let scaled = logit / *temperature;
                    max = max.max(scaled);
                    scratch.push(scaled);
                }
                let mut sum = 0.0f64;
                for value in scratch.iter_mut() {
                    let p = (*value - max).exp();
                    *value = p;
                    sum += f64::from(p);
                }
                let target = sum * rng.canonical();
                let mut running = 0.0f64;
                for (index, &p) in scratch.iter().enumerate() {
                    running += f64::from(p);
                    if running >= target {
                        return index;
                    }
                }
                logits.len() - 1
            }
        }
    }
}

/// The index of the first highest value.
fn greedy(logits: &[f32]) -> usize {
    let mut best = 0;
    for (index, &logit) in logits.iter().enumerate().skip(1) {
        if logit > logits[best] {
            best = index;
        }
    }
    best
}

/// The 32-bit Mersenne Twister, as C++'s `std::mt19937`.
#[derive(Clone)]
pub(crate) struct Mt19937 {
    state: [u32; 624],
    index: usize,
}

impl std::fmt::Debug for Mt19937 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mt19937").field("index", &self.index).finish_non_exhaustive()
    }
}

impl Mt19937 {
    pub(crate) fn new(seed: u32) -> Self {
        let mut state = [0u32; 624];
        state[0] = seed;
        for i in 1..624 {
            state[i] = 1_812_433_253u32.wrapping_mul(state[i - 1] ^ (state[i - 1] >> 30)).wrapping_add(i as u32);
        }
        Mt19937 { state, index: 624 }
    }

    pub(crate) fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    fn twist(&mut self) {
        for i in 0..624 {
            let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % 624] & 0x7fff_ffff);
            let mut next = self.state[(i + 397) % 624] ^ (y >> 1);
            if y & 1 != 0 {
                next ^= 0x9908_b0df;
            }
            self.state[i] = next;
        }
        self.index = 0;
    }

    /// A number in [0, 1), as libstdc++'s `generate_canonical<double, 53>` makes it from two draws.
    pub(crate) fn canonical(&mut self) -> f64 {
        let low = f64::from(self.next_u32());
        let high = f64::from(self.next_u32());
        let scale = 4_294_967_296.0f64;
        let value = (low + high * scale) / (scale * scale);
        if value >= 1.0 {
            f64::from_bits(1.0f64.to_bits() - 1)
        } else {
            value
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_twister_is_cpps_mt19937() {
        // The C++ standard requires the 10000th draw of a default-constructed mt19937 (seed 5489).
        let mut rng = Mt19937::new(5489);
        let mut last = 0;
        for _ in 0..10_000 {
            last = rng.next_u32();
        }
        assert_eq!(last, 4_123_659_995);
    }

    #[test]
    fn native_draws_are_llama_cpps_draws_token_for_token() {
        use llama_cpp_2::sampling::LlamaSampler;
        use llama_cpp_2::token::data::LlamaTokenData;
        use llama_cpp_2::token::data_array::LlamaTokenDataArray;
        use llama_cpp_2::token::LlamaToken;

        // Logits shaped like a model's: a few high, a long low tail (SmolLM2's vocabulary size).
        let mut source = Mt19937::new(2024);
        let mut logits = || {
            (0..49_152)
                .map(|_| {
                    let u = source.canonical() as f32;
                    if u > 0.9995 {
                        12.0 + 8.0 * u
                    } else {
                        -4.0 + 14.0 * u
                    }
                })
                .collect::<Vec<f32>>()
        };
        let mut scratch = Vec::new();
        for (temperature, seed) in [(0.7f32, 0u32), (1.0, 42), (0.2, 7), (1.5, 123_456), (0.0, 9)] {
            let mut native = NativeSampler::new(temperature, seed);
            let mut chain = if temperature <= 0.0 {
                LlamaSampler::chain_simple([LlamaSampler::greedy()])
            } else {
                LlamaSampler::chain_simple([LlamaSampler::temp(temperature), LlamaSampler::dist(seed)])
            };
            for draw in 0..40 {
                let row = logits();
                let ours = native.sample(&row, &mut scratch);
                let mut array = LlamaTokenDataArray::from_iter(
                    row.iter().enumerate().map(|(id, &logit)| LlamaTokenData::new(LlamaToken(id as i32), logit, 0.0)),
                    false,
                );
                array.apply_sampler(&mut chain);
                let theirs = array.selected_token().expect("a token").0 as usize;
                assert_eq!(ours, theirs, "temperature {temperature}, seed {seed}, draw {draw}");
            }
        }
    }

    #[test]
    fn greedy_takes_the_first_of_equal_highest_logits() {
        assert_eq!(greedy(&[0.5, 2.0, -1.0, 2.0]), 1);
        let mut scratch = Vec::new();
        assert_eq!(NativeSampler::new(0.0, 7).sample(&[0.5, 2.0, -1.0, 2.0], &mut scratch), 1);
    }

    #[test]
    fn a_dominant_logit_is_drawn_and_the_draws_follow_the_seed() {
        let mut scratch = Vec::new();
        let mut logits = vec![-30.0f32; 1000];
        logits[417] = 30.0;
        let mut sampler = NativeSampler::new(0.7, 3);
        assert!((0..20).all(|_| sampler.sample(&logits, &mut scratch) == 417));
        let flat = vec![0.0f32; 64];
        let draws = |seed| {
            let mut sampler = NativeSampler::new(1.0, seed);
            let mut scratch = Vec::new();
            (0..32).map(|_| sampler.sample(&flat, &mut scratch)).collect::<Vec<_>>()
        };
        assert_eq!(draws(11), draws(11));
        assert_ne!(draws(11), draws(12));
        // A flat distribution spreads its draws.
        assert!(draws(11).iter().collect::<std::collections::HashSet<_>>().len() > 16);
    }
}
