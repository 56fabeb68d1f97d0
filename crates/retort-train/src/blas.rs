//! The frozen weights' matrix products through the system's OpenBLAS, when it has one.
//!
//! Most of a LoRA step's arithmetic is `x @ Wᵀ` and `g @ W` with the frozen weights. candle's
//! CPU matmul (the `gemm` crate) has no AVX-512 kernels on a stable toolchain; OpenBLAS picks
//! its kernels for the CPU at run time and was 1.6–2.5× faster on this project's 2-core
//! machines. It is loaded with `dlopen` when the trainer starts (`libopenblas.so.0`, which
//! `scripts/setup.sh` installs as Debian's `libopenblas0-pthread`; `RETORT_BLAS` names another
//! file, `RETORT_BLAS=off` turns it off), so the project builds and trains without it, on
//! candle's matmul.
//!
//! The trainer's `unsafe` code (with `_exit` in worker.rs): a C function called through a pointer
//! that `dlopen` gave, on slices whose lengths are checked against the dimensions first.
#![allow(unsafe_code)]

use std::ffi::c_int;
use std::sync::OnceLock;

type Sgemm = unsafe extern "C" fn(
    layout: c_int,
    trans_a: c_int,
    trans_b: c_int,
    m: c_int,
    n: c_int,
    k: c_int,
    alpha: f32,
    a: *const f32,
    lda: c_int,
    b: *const f32,
    ldb: c_int,
    beta: f32,
    c: *mut f32,
    ldc: c_int,
);
type SetThreads = unsafe extern "C" fn(threads: c_int);

const ROW_MAJOR: c_int = 101;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;

struct Blas {
    sgemm: Sgemm,
    // Kept so the functions stay mapped.
    _library: libloading::Library,
}

static BLAS: OnceLock<Option<Blas>> = OnceLock::new();

fn load(threads: Option<usize>) -> Option<Blas> {
    let name = std::env::var("RETORT_BLAS").unwrap_or_else(|_| "libopenblas.so.0".to_string());
    if name == "off" {
        return None;
    }
    // SAFETY: loading OpenBLAS runs its initialiser, which only sets up its thread pool.
    let library = unsafe { libloading::Library::new(&name) }.ok()?;
    // SAFETY: the symbols have the CBLAS signatures above.
    let sgemm = unsafe { *library.get::<Sgemm>(b"cblas_sgemm\0").ok()? };
    if let Some(threads) = threads {
        if let Ok(set) = unsafe { library.get::<SetThreads>(b"openblas_set_num_threads\0") } {
            unsafe { set(threads.max(1) as c_int) };
        }
    }
    Some(Blas { sgemm, _library: library })
}

/// Loads the library once, with the trainer's thread count; later calls return what the first
/// found. Whether a BLAS is in use (for the trainer's report).
pub(crate) fn init(threads: Option<usize>) -> bool {
    BLAS.get_or_init(|| load(threads)).is_some()
}

fn blas() -> Option<&'static Blas> {
    BLAS.get_or_init(|| load(None)).as_ref()
}

/// `c (m, n) = a (m, k) @ bᵀ` for `b` (n, k), or `a @ b` for `b` (k, n) when `!transpose_b`;
/// all row-major and contiguous. `None` when no BLAS was loaded.
pub(crate) fn matmul(a: &[f32], b: &[f32], m: usize, n: usize, k: usize, transpose_b: bool) -> Option<Vec<f32>> {
    let blas = blas()?;
    assert_eq!(a.len(), m * k, "blas: a is not m × k");
    assert_eq!(b.len(), n * k, "blas: b is not n × k");
    if m == 0 || n == 0 {
        return Some(vec![0.0; m * n]);
    }
    let mut c = vec![0f32; m * n];
    let (trans_b, ldb) = if transpose_b { (TRANS, k) } else { (NO_TRANS, n) };
    // SAFETY: the slices have the lengths the dimensions and leading dimensions say.
    unsafe {
        (blas.sgemm)(
            ROW_MAJOR,
            NO_TRANS,
            trans_b,
            m as c_int,
            n as c_int,
            k as c_int,
            1.0,
            a.as_ptr(),
            k as c_int,
            b.as_ptr(),
            ldb as c_int,
            0.0,
            c.as_mut_ptr(),
            n as c_int,
        )
    };
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// When a BLAS is loaded (scripts/setup.sh installs one), its products agree with the
    /// definition, both layouts of `b`; without one, `matmul` says so with `None`.
    #[test]
    fn products_agree_with_the_definition_when_a_blas_is_loaded() {
        let (m, n, k) = (3, 4, 5);
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 - 3.0).collect();
        let b: Vec<f32> = (0..n * k).map(|i| (i % 5) as f32 * 0.5 - 1.0).collect();
        let loaded = init(Some(1));
        let Some(transposed) = matmul(&a, &b, m, n, k, true) else {
            assert!(!loaded);
            return;
        };
        for i in 0..m {
            for j in 0..n {
                let expected: f32 = (0..k).map(|p| a[i * k + p] * b[j * k + p]).sum();
                assert!((transposed[i * n + j] - expected).abs() < 1e-5);
            }
        }
        // b read as (k, n).
        let plain = matmul(&a, &b, m, n, k, false).expect("loaded");
        for i in 0..m {
            for j in 0..n {
                let expected: f32 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
                assert!((plain[i * n + j] - expected).abs() < 1e-5);
            }
        }
    }
}
