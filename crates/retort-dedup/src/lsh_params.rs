//! Choice of LSH bands and rows for a Jaccard threshold, as datasketch's `MinHashLSH` does it.

use serde::{Deserialize, Serialize};

/// How a MinHash signature is cut into LSH bands: `bands` bands of `rows` values each.
///
/// Two records become candidates when all `rows` values of at least one band agree, which
/// happens with probability `1 - (1 - s^rows)^bands` for Jaccard similarity `s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LshParams {
    /// Number of bands (hash tables).
    pub bands: usize,
    /// Number of signature values per band.
    pub rows: usize,
}

/// The bands and rows (with `bands * rows <= num_perm`) that minimise the sum of the
/// false-positive and false-negative probability mass, weighted equally, around `threshold`.
///
/// This is the optimisation of datasketch's `MinHashLSH` (`_optimal_param` with weights
/// 0.5/0.5): the false-positive mass is the integral over `s` in `[0, threshold]` of the
/// candidate probability, the false-negative mass is the integral over `[threshold, 1]` of
/// its complement. `threshold` must lie in `(0, 1)` and `num_perm` be at least 1 (callers
/// validate; out-of-range values are clamped).
pub fn optimal_lsh_params(threshold: f64, num_perm: usize) -> LshParams {
    let t = threshold.clamp(1e-9, 1.0 - 1e-9);
    let num_perm = num_perm.max(1);
    let mut best = LshParams { bands: 1, rows: num_perm };
    let mut min_error = f64::INFINITY;
    for b in 1..=num_perm {
        for r in 1..=(num_perm / b) {
            let p = |s: f64| 1.0 - (1.0 - s.powi(r as i32)).powi(b as i32);
            let fp = simpson(p, 0.0, t);
            let fn_ = simpson(|s| 1.0 - p(s), t, 1.0);
            let error = 0.5 * fp + 0.5 * fn_;
            if error < min_error {
                min_error = error;
                best = LshParams { bands: b, rows: r };
            }
        }
    }
    best
}

/// Composite Simpson rule; the integrands are smooth polynomials on `[0, 1]`.
fn simpson(f: impl Fn(f64) -> f64, a: f64, b: f64) -> f64 {
    const N: usize = 256; // even
    let h = (b - a) / N as f64;
    let mut sum = f(a) + f(b);
    for i in 1..N {
        let w = if i % 2 == 1 { 4.0 } else { 2.0 };
        sum += w * f(a + h * i as f64);
    }
    sum * h / 3.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (threshold, num_perm, bands, rows) as computed by datasketch 1.x `_optimal_param`
    /// with equal weights.
    const DATASKETCH: &[(f64, usize, usize, usize)] = &[
        (0.5, 16, 5, 3),
        (0.5, 32, 8, 4),
        (0.5, 64, 14, 4),
        (0.5, 128, 25, 5),
        (0.5, 256, 42, 6),
        (0.6, 16, 4, 4),
        (0.6, 32, 6, 5),
        (0.6, 64, 10, 6),
        (0.6, 128, 18, 7),
        (0.6, 256, 32, 8),
        (0.7, 16, 3, 5),
        (0.7, 32, 5, 6),
        (0.7, 64, 8, 8),
        (0.7, 128, 14, 9),
        (0.7, 256, 25, 10),
        (0.75, 16, 2, 6),
        (0.75, 32, 4, 8),
        (0.75, 64, 7, 9),
        (0.75, 128, 11, 11),
        (0.75, 256, 21, 12),
        (0.8, 16, 2, 8),
        (0.8, 32, 3, 10),
        (0.8, 64, 5, 11),
        (0.8, 128, 9, 13),
        (0.8, 256, 17, 15),
        (0.85, 16, 2, 8),
        (0.85, 32, 3, 10),
        (0.85, 64, 4, 15),
        (0.85, 128, 8, 16),
        (0.85, 256, 13, 19),
        (0.9, 16, 1, 15),
        (0.9, 32, 2, 16),
        (0.9, 64, 3, 21),
        (0.9, 128, 5, 25),
        (0.9, 256, 9, 28),
        (0.95, 16, 1, 16),
        (0.95, 32, 1, 32),
        (0.95, 64, 2, 32),
        (0.95, 128, 3, 42),
        (0.95, 256, 5, 51),
    ];

    #[test]
    fn matches_datasketch() {
        for &(t, n, bands, rows) in DATASKETCH {
            assert_eq!(optimal_lsh_params(t, n), LshParams { bands, rows }, "threshold {t} num_perm {n}");
        }
    }
}
