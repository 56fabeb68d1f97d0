// retort: the tiled Q4_1 kernel (q4_1_gemm.cpp) against llama.cpp's row-at-a-time product.
//
// Built and run by test.sh beside this file. For random Q4_1 weights and Q8_1 activations of
// the shapes the default model multiplies (and odd ones: heights that are not a multiple of 4,
// 2 to 64 rows, one to three threads), every output must equal, bit for bit, what
// `ggml_vec_dot_q4_1_q8_1` gives for its row (its AVX2 arithmetic is restated below, step for
// step), and be within float rounding of a double-precision sum. Prints one line per shape with
// the time of both (a mean of 20, single-threaded); exits 1 on a difference.

#include "ggml-impl.h"
#include "ggml-cpu-impl.h"
#include "ggml-quants.h"
#include "simd-mappings.h"
#include "llamafile/sgemm.h"

#include <immintrin.h>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

float ggml_table_f32_f16[1 << 16];

// The test links the kernel alone: the cases it does not take would go to llama.cpp's tinyBLAS.
extern "C" bool llamafile_sgemm_upstream(const struct ggml_compute_params *, int64_t, int64_t, int64_t,
                                         const void *, int64_t, const void *, int64_t, void *, int64_t,
                                         int, int, int) {
    return false;
}

// ggml_vec_dot_q4_1_q8_1 (ggml-cpu/arch/x86/quants.c), AVX2 without VNNI.
static float vec_dot(int nb, const block_q4_1 * x, const block_q8_1 * y) {
    __m256 acc = _mm256_setzero_ps();
    float summs = 0;
    for (int ib = 0; ib < nb; ++ib) {
        const float d0 = GGML_CPU_FP16_TO_FP32(x[ib].d);
        const float d1 = GGML_CPU_FP16_TO_FP32(y[ib].d);
        summs += GGML_CPU_FP16_TO_FP32(x[ib].m) * GGML_CPU_FP16_TO_FP32(y[ib].s);
        const __m256 d0d1 = _mm256_mul_ps(_mm256_set1_ps(d0), _mm256_set1_ps(d1));
        const __m128i tmp = _mm_loadu_si128((const __m128i *) x[ib].qs);
        const __m256i qx = _mm256_and_si256(_mm256_set1_epi8(0xF),
            _mm256_insertf128_si256(_mm256_castsi128_si256(tmp), _mm_srli_epi16(tmp, 4), 1));
        const __m256i qy = _mm256_loadu_si256((const __m256i *) y[ib].qs);
        const __m256i dot = _mm256_madd_epi16(_mm256_set1_epi16(1), _mm256_maddubs_epi16(qx, qy));
        acc = _mm256_fmadd_ps(d0d1, _mm256_cvtepi32_ps(dot), acc);
    }
    __m128 res = _mm_add_ps(_mm256_extractf128_ps(acc, 1), _mm256_castps256_ps128(acc));
    res = _mm_add_ps(res, _mm_movehl_ps(res, res));
    res = _mm_add_ss(res, _mm_movehdup_ps(res));
    return _mm_cvtss_f32(res) + summs;
}

static double exact(int nb, const block_q4_1 * x, const block_q8_1 * y) {
    double sum = 0;
    for (int ib = 0; ib < nb; ++ib) {
        const double d = GGML_CPU_FP16_TO_FP32(x[ib].d), m = GGML_CPU_FP16_TO_FP32(x[ib].m);
        const double e = GGML_CPU_FP16_TO_FP32(y[ib].d);
        for (int t = 0; t < 32; ++t) {
            const int q = t < 16 ? (x[ib].qs[t] & 15) : (x[ib].qs[t - 16] >> 4);
            sum += (d * q) * (e * y[ib].qs[t]);
        }
        sum += m * GGML_CPU_FP16_TO_FP32(y[ib].s);
    }
    return sum;
}

int main() {
    for (int i = 0; i < (1 << 16); ++i) {
        ggml_table_f32_f16[i] = _cvtsh_ss((unsigned short) i);
    }
    // (height, rows, blocks): the model's projections (576 and 1536 wide, 192 for keys and
    // values) and shapes that leave remainders.
    const int shapes[][3] = {
        {576, 2, 18}, {576, 3, 18}, {576, 8, 18}, {576, 9, 18}, {192, 9, 18}, {1536, 9, 18},
        {576, 9, 48}, {576, 64, 18}, {578, 7, 18}, {7, 3, 5}, {1, 2, 1}, {5, 17, 3},
    };
    std::mt19937 rng(7);
    int failures = 0;
    for (const auto & shape : shapes) {
        const int m = shape[0], n = shape[1], k = shape[2];
        std::vector<block_q4_1> A(m * k);
        std::vector<block_q8_1> B(n * k);
        for (auto & a : A) {
            a.d = GGML_CPU_FP32_TO_FP16((rng() % 1000) / 1e5f);
            a.m = GGML_CPU_FP32_TO_FP16(-(float) (rng() % 1000) / 1e4f);
            for (auto & q : a.qs) q = rng() & 255;
        }
        for (auto & b : B) {
            int s = 0;
            for (auto & q : b.qs) { q = (int8_t) ((int) (rng() % 255) - 127); s += q; }
            const float d = (rng() % 1000) / 1e5f;
            b.d = GGML_CPU_FP32_TO_FP16(d);
            b.s = GGML_CPU_FP32_TO_FP16(d * s);
        }
        std::vector<float> want(m * n);
        const int reps = 20;
        const auto t0 = std::chrono::steady_clock::now();
        for (int r = 0; r < reps; ++r)
            for (int j = 0; j < n; ++j)
                for (int i = 0; i < m; ++i) want[j * m + i] = vec_dot(k, &A[i * k], &B[j * k]);
        const auto t1 = std::chrono::steady_clock::now();
        double tiled_s = 0;
        for (int threads = 1; threads <= 3; ++threads) {
            std::vector<float> got(m * n, NAN);
            ggml_compute_params params{};
            params.nth = threads;
            const auto t2 = std::chrono::steady_clock::now();
            for (int r = 0; r < (threads == 1 ? reps : 1); ++r)
            for (int ith = 0; ith < threads; ++ith) {
                params.ith = ith;
                if (!llamafile_sgemm(&params, m, n, k, A.data(), k, B.data(), k, got.data(), m,
                                     GGML_TYPE_Q4_1, GGML_TYPE_Q8_1, GGML_TYPE_F32)) {
                    std::printf("FAIL %dx%dx%d: the kernel did not take Q4_1 x Q8_1\n", m, n, k);
                    return 1;
                }
            }
            if (threads == 1) tiled_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t2).count() / reps;
            for (int t = 0; t < m * n; ++t) {
                const double ref = exact(k, &A[(t % m) * k], &B[(t / m) * k]);
                if (std::memcmp(&got[t], &want[t], sizeof(float)) != 0 || std::fabs(got[t] - ref) > 1e-4 * (1 + std::fabs(ref))) {
                    std::printf("FAIL %dx%dx%d, %d threads: C[%d][%d] = %.9g, row at a time %.9g, exact %.9g\n",
                                m, n, k, threads, t / m, t % m, got[t], want[t], ref);
                    ++failures;
                    break;
                }
            }
        }
        const double row_s = std::chrono::duration<double>(t1 - t0).count() / reps;
        std::printf("ok %4d weights x %2d rows x %2d blocks: equal bit for bit (1-3 threads); row at a time %.3f ms, tiled %.3f ms\n",
                    m, n, k, row_s * 1e3, tiled_s * 1e3);
    }
    // One row is left to ggml's own vec_dot, as upstream does.
    ggml_compute_params params{};
    params.nth = 1;
    block_q4_1 a{};
    block_q8_1 b{};
    float c = 0;
    if (llamafile_sgemm(&params, 1, 1, 1, &a, 1, &b, 1, &c, 1, GGML_TYPE_Q4_1, GGML_TYPE_Q8_1, GGML_TYPE_F32)) {
        std::printf("FAIL: a single row should go to ggml's vec_dot\n");
        ++failures;
    }
    return failures == 0 ? 0 : 1;
}
