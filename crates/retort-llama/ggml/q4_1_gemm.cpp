// retort: a tiled Q4_1 x Q8_1 matrix multiplication for llama.cpp's CPU backend (x86, AVX2).
//
// llama.cpp multiplies Q4_1 weights by one activation row at a time
// (`ggml_vec_dot_q4_1_q8_1`): for a batch of n rows every weight block is unpacked from its
// nibbles n times, and every activation block's scales are converted once per weight row.
// tinyBLAS (`llamafile/sgemm.cpp`) tiles the other 4-bit formats (Q4_0, Q5_0, IQ4_NL) but not
// Q4_1, which is the format of retort's default model file (SmolLM2-135M-Instruct Q4_1).
//
// This file defines `llamafile_sgemm`, the entry point ggml's `mul_mat` calls first. For Q4_1
// weights against Q8_1 activations with at least two rows it runs the kernel below; every
// other case goes to the original, which `patch.cmake` compiles as `llamafile_sgemm_upstream`.
// Single rows (n = 1, one sequence decoding) stay on ggml's own `vec_dot`, as upstream does.
// `RETORT_GGML_Q4_1_GEMM=0` in the worker's environment turns the kernel off (ggml then
// multiplies a row at a time, as it does unpatched), which is how bench/local.sh measures it.
//
// The kernel computes, per weight row i and activation row j, over the blocks l of k:
//   C[j][i] = sum_l  d_a * d_b * sum_t(q_a[t] * q_b[t])  +  m_a * s_b
// where a Q4_1 value is d_a * q_a + m_a (q_a in 0..15) and Q8_1 stores s_b = d_b * sum_t q_b[t].
// That is `ggml_vec_dot_q4_1_q8_1`'s arithmetic in its order: the scales' product, one fused
// multiply-add per block into eight lanes, the lanes summed as its hsum does, the min terms
// summed apart and added last. So every result is the float vec_dot gives (the integer dot
// products are exact either way: 15 * 127 * 2 fits in 16 bits).
//
// A tile is RM weight rows by RN activation rows: each weight block is unpacked once per tile
// and each activation block loaded once per RM rows. RN is chosen so that the n rows split
// into equal passes of at most 3 (RM = 4; RM = 1 and up to 8 for the rows of a matrix whose
// height is not a multiple of 4), so the accumulators stay close to AVX2's 16 vector registers.
// Single-threaded on this project's machine it is 1.5 to 2 times as fast as the row-at-a-time
// product for 2 to 64 rows (`test.sh` prints both times).

#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wignored-attributes"
#endif

#include "llamafile/sgemm.h"
#include "ggml-impl.h"
#include "ggml-cpu-impl.h"
#include "ggml-quants.h"
#include "simd-mappings.h"

#include <cstdlib>
#include <cstring>

extern "C" bool llamafile_sgemm_upstream(const struct ggml_compute_params * params, int64_t, int64_t,
                                         int64_t, const void *, int64_t, const void *, int64_t,
                                         void *, int64_t, int, int, int);

#if defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
#include <immintrin.h>

namespace {

inline float unhalf(ggml_fp16_t d) {
    return GGML_CPU_FP16_TO_FP32(d);
}

// The 32 4-bit values of a Q4_1 block as unsigned bytes: the low nibbles are values 0..15,
// the high nibbles 16..31 (ggml's layout), matching the order of a Q8_1 block's bytes.
inline __m256i nibbles(const uint8_t * p) {
    const __m128i x = _mm_loadu_si128((const __m128i *) p);
    return _mm256_and_si256(_mm256_set1_epi8(15),
                            _mm256_insertf128_si256(_mm256_castsi128_si256(x), _mm_srli_epi16(x, 4), 1));
}

// Eight partial sums of unsigned (0..15) times signed bytes, as floats.
inline __m256 dot_u8_s8(__m256i u, __m256i s) {
#if defined(__AVXVNNI__)
    const __m256i p = _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s);
#else
    const __m256i p = _mm256_madd_epi16(_mm256_set1_epi16(1), _mm256_maddubs_epi16(u, s));
#endif
    return _mm256_cvtepi32_ps(p);
}

inline float hsum(__m256 x) {
    __m128 v = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    v = _mm_add_ss(v, _mm_movehdup_ps(v));
    return _mm_cvtss_f32(v);
}

struct Q41Gemm {
    const block_q4_1 * A; int64_t lda;
    const block_q8_1 * B; int64_t ldb;
    float * C;            int64_t ldc;
    int64_t k;
    int ith, nth;

    // Rows [m0, m) of A against rows [n0, n0 + RN * passes) of B, tiles of RM x RN,
    // the tiles shared out among the threads in contiguous runs.
    template <int RM, int RN>
    void gemm(int64_t m0, int64_t m, int64_t n0, int64_t passes) const {
        const int64_t ytiles = (m - m0) / RM;
        const int64_t tiles = ytiles * passes;
        const int64_t duty = (tiles + nth - 1) / nth;
        const int64_t start = duty * ith;
        const int64_t end = start + duty < tiles ? start + duty : tiles;
        for (int64_t job = start; job < end; ++job) {
            const int64_t ii = m0 + job / passes * RM;
            const int64_t jj = n0 + job % passes * RN;
            __m256 acc[RN][RM] = {};
            float mins[RN][RM] = {};
            for (int64_t l = 0; l < k; ++l) {
                __m256i a[RM];
                float da[RM], ma[RM];
                for (int i = 0; i < RM; ++i) {
                    const block_q4_1 * x = A + lda * (ii + i) + l;
                    a[i] = nibbles(x->qs);
                    da[i] = unhalf(x->d);
                    ma[i] = unhalf(x->m);
                }
                for (int j = 0; j < RN; ++j) {
                    const block_q8_1 * y = B + ldb * (jj + j) + l;
                    const __m256i b = _mm256_loadu_si256((const __m256i *) y->qs);
                    const float db = unhalf(y->d);
                    const float sb = unhalf(y->s);
                    for (int i = 0; i < RM; ++i) {
                        acc[j][i] = _mm256_fmadd_ps(_mm256_set1_ps(da[i] * db), dot_u8_s8(a[i], b), acc[j][i]);
                        mins[j][i] += ma[i] * sb;
                    }
                }
            }
            for (int j = 0; j < RN; ++j)
                for (int i = 0; i < RM; ++i)
                    C[ldc * (jj + j) + ii + i] = hsum(acc[j][i]) + mins[j][i];
        }
    }

    // All of rows [n0, n0 + rn * passes) of B with tiles of RM rows, rn a runtime width.
    template <int RM>
    void columns(int64_t m0, int64_t m, int64_t n0, int rn, int64_t passes) const {
        switch (rn) {
        case 1: gemm<RM, 1>(m0, m, n0, passes); break;
        case 2: gemm<RM, 2>(m0, m, n0, passes); break;
        case 3: gemm<RM, 3>(m0, m, n0, passes); break;
        case 4: if constexpr (RM == 1) { gemm<1, 4>(m0, m, n0, passes); } break;
        case 5: if constexpr (RM == 1) { gemm<1, 5>(m0, m, n0, passes); } break;
        case 6: if constexpr (RM == 1) { gemm<1, 6>(m0, m, n0, passes); } break;
        case 7: if constexpr (RM == 1) { gemm<1, 7>(m0, m, n0, passes); } break;
        case 8: if constexpr (RM == 1) { gemm<1, 8>(m0, m, n0, passes); } break;
        default: break;
        }
    }

    // Rows [m0, m) of A against all n rows of B: the n rows in equal passes of at most
    // `widest`, the few left over in one narrower pass.
    template <int RM>
    void rows(int64_t m0, int64_t m, int64_t n, int widest) const {
        const int64_t passes = (n + widest - 1) / widest;
        const int rn = (int) ((n + passes - 1) / passes);
        const int64_t full = n / rn;
        columns<RM>(m0, m, 0, rn, full);
        if (full * rn < n) {
            columns<RM>(m0, m, full * rn, (int) (n - full * rn), 1);
        }
    }

    void matmul(int64_t m, int64_t n) const {
        const int64_t fours = m / 4 * 4;
        rows<4>(0, fours, n, 3);
        if (fours < m) {
            rows<1>(fours, m, n, 8);
        }
    }
};

} // namespace
#endif

extern "C" bool llamafile_sgemm(const struct ggml_compute_params * params, int64_t m, int64_t n, int64_t k,
                                const void * A, int64_t lda, const void * B, int64_t ldb, void * C,
                                int64_t ldc, int Atype, int Btype, int Ctype) {
#if defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
    static const bool enabled = [] {
        const char * value = std::getenv("RETORT_GGML_Q4_1_GEMM");
        return value == nullptr || std::strcmp(value, "0") != 0;
    }();
    if (enabled && Atype == GGML_TYPE_Q4_1 && Btype == GGML_TYPE_Q8_1 && Ctype == GGML_TYPE_F32 && n >= 2) {
        const Q41Gemm gemm{
            (const block_q4_1 *) A, lda,
            (const block_q8_1 *) B, ldb,
            (float *) C, ldc,
            k, params->ith, params->nth,
        };
        gemm.matmul(m, n);
        return true;
    }
#endif
    return llamafile_sgemm_upstream(params, m, n, k, A, lda, B, ldb, C, ldc, Atype, Btype, Ctype);
}
