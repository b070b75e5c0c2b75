// Dense products for the network kernels, bit for bit equal to the plain triple loop: every entry is summed over k
// in order with one fused multiply-add per term, and vectors run across columns only, never across k. So results do
// not depend on the vector width (AVX-512, or AVX2 with FMA, when the CPU has it, chosen at run time; std::fma
// otherwise) or on how the rows are blocked.
#pragma once
#include <cstddef>
#include <cmath>
#include <cstring>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace fastflow {

namespace gemm_detail {

#if defined(__GNUC__)
#define FASTFLOW_ALWAYS_INLINE inline __attribute__((always_inline))
typedef double vec2 __attribute__((vector_size(16)));
typedef double vec4 __attribute__((vector_size(32)));
typedef double vec8 __attribute__((vector_size(64)));
#else
#define FASTFLOW_ALWAYS_INLINE inline
using vec2 = double;
#endif

// c + a b rounded once. Fused in every path: the vector units' instruction is twice as fast as a multiply and an add
// (the forward pass at n = 1000, d = 50, width 128: 1.7x), and the portable code must round the same.
FASTFLOW_ALWAYS_INLINE void mul_add(double& c, double a, double b) { c = std::fma(a, b, c); }
template <class V>
FASTFLOW_ALWAYS_INLINE void mul_add(V& c, double a, const V& b) {
    for (std::size_t l = 0; l < sizeof(V) / sizeof(double); ++l) c[l] = std::fma(a, b[l], c[l]);
}
#if defined(__x86_64__) && defined(__GNUC__)
// not always_inline: inlined only where flattened into avx2() or avx512(), whose targets they share
__attribute__((target("avx2,fma"))) inline void mul_add(vec4& c, double a, const vec4& b) {
    c = _mm256_fmadd_pd(_mm256_set1_pd(a), b, c);
}
__attribute__((target("avx512f"))) inline void mul_add(vec8& c, double a, const vec8& b) {
    c = _mm512_fmadd_pd(_mm512_set1_pd(a), b, c);
}
#endif

// R rows x NV vectors of C, kept in registers over the whole k loop
template <class V, std::size_t R, std::size_t NV, bool Add, bool Scale>
FASTFLOW_ALWAYS_INLINE void tile(std::size_t K, const double* A, std::size_t a_row, std::size_t a_k, const double* B,
                                 std::size_t ldb, double* C, std::size_t ldc, const double* S) {
    constexpr std::size_t L = sizeof(V) / sizeof(double);
    V acc[R][NV];
    for (std::size_t r = 0; r < R; ++r)
        for (std::size_t v = 0; v < NV; ++v) {
            if (Add) std::memcpy(&acc[r][v], C + r * ldc + v * L, sizeof(V));
            else acc[r][v] = V{};
        }
    for (std::size_t k = 0; k < K; ++k) {
        V b[NV];
        for (std::size_t v = 0; v < NV; ++v) std::memcpy(&b[v], B + k * ldb + v * L, sizeof(V));
        for (std::size_t r = 0; r < R; ++r) {
            const double a = A[r * a_row + k * a_k];
            for (std::size_t v = 0; v < NV; ++v) mul_add(acc[r][v], a, b[v]);
        }
    }
    for (std::size_t r = 0; r < R; ++r)
        for (std::size_t v = 0; v < NV; ++v) {
            if (Scale) {
                V scale;
                std::memcpy(&scale, S + r * ldc + v * L, sizeof(V));
                acc[r][v] *= scale;
            }
            std::memcpy(C + r * ldc + v * L, &acc[r][v], sizeof(V));
        }
}

template <class V, std::size_t R, bool Add, bool Scale>
FASTFLOW_ALWAYS_INLINE void row_block(std::size_t cols, std::size_t K, const double* A, std::size_t a_row,
                                      std::size_t a_k, const double* B, std::size_t ldb, double* C, std::size_t ldc,
                                      const double* S) {
    constexpr std::size_t L = sizeof(V) / sizeof(double);
    std::size_t j = 0;
    for (; j + 2 * L <= cols; j += 2 * L) tile<V, R, 2, Add, Scale>(K, A, a_row, a_k, B + j, ldb, C + j, ldc, S + j);
    for (; j + L <= cols; j += L) tile<V, R, 1, Add, Scale>(K, A, a_row, a_k, B + j, ldb, C + j, ldc, S + j);
    for (; j < cols; ++j) tile<double, R, 1, Add, Scale>(K, A, a_row, a_k, B + j, ldb, C + j, ldc, S + j);
}

// Rows per tile: AVX-512's 32 registers hold 8 rows x 2 vectors of accumulators with room for the operands (the
// forward product at n x 128 x 50, timed alone, 1.7x faster than with 4 rows); 16 registers (AVX2, SSE) hold 4.
template <class V>
constexpr std::size_t tile_rows = sizeof(V) == 64 ? 8 : 4;

template <class V, bool Add, bool Scale>
FASTFLOW_ALWAYS_INLINE void run(std::size_t rows, std::size_t cols, std::size_t K, const double* A, std::size_t a_row,
                                std::size_t a_k, const double* B, std::size_t ldb, double* C, std::size_t ldc,
                                const double* S) {
    constexpr std::size_t R = tile_rows<V>;
    std::size_t i = 0;
    for (; i + R <= rows; i += R)
        row_block<V, R, Add, Scale>(cols, K, A + i * a_row, a_row, a_k, B, ldb, C + i * ldc, ldc, S + i * ldc);
    for (; i + 4 <= rows; i += 4)
        row_block<V, 4, Add, Scale>(cols, K, A + i * a_row, a_row, a_k, B, ldb, C + i * ldc, ldc, S + i * ldc);
    for (; i < rows; ++i)
        row_block<V, 1, Add, Scale>(cols, K, A + i * a_row, a_row, a_k, B, ldb, C + i * ldc, ldc, S + i * ldc);
}

// (S: null, or the scales of a product that does not add)
template <class V>
FASTFLOW_ALWAYS_INLINE void dispatch_add(bool add, std::size_t rows, std::size_t cols, std::size_t K, const double* A,
                                         std::size_t a_row, std::size_t a_k, const double* B, std::size_t ldb,
                                         double* C, std::size_t ldc, const double* S) {
    if (add) run<V, true, false>(rows, cols, K, A, a_row, a_k, B, ldb, C, ldc, C);
    else if (S) run<V, false, true>(rows, cols, K, A, a_row, a_k, B, ldb, C, ldc, S);
    else run<V, false, false>(rows, cols, K, A, a_row, a_k, B, ldb, C, ldc, C);
}

#if defined(__x86_64__) && defined(__GNUC__)
// flattened: the mul_add of the function's own target is inlined through the templates above (AVX-512F has the
// fused multiply-adds; AVX2 needs FMA besides)
__attribute__((target("avx2,fma"), flatten)) inline void avx2(bool add, std::size_t rows, std::size_t cols,
                                                               std::size_t K, const double* A, std::size_t a_row,
                                                               std::size_t a_k, const double* B, std::size_t ldb,
                                                               double* C, std::size_t ldc, const double* S) {
    dispatch_add<vec4>(add, rows, cols, K, A, a_row, a_k, B, ldb, C, ldc, S);
}
__attribute__((target("avx512f"), flatten)) inline void avx512(bool add, std::size_t rows, std::size_t cols,
                                                                std::size_t K, const double* A, std::size_t a_row,
                                                                std::size_t a_k, const double* B, std::size_t ldb,
                                                                double* C, std::size_t ldc, const double* S) {
    dispatch_add<vec8>(add, rows, cols, K, A, a_row, a_k, B, ldb, C, ldc, S);
}
#endif

// the plain triple loop itself, for products too small to repay the tiles' dispatch and loop set-up
FASTFLOW_ALWAYS_INLINE void plain(bool add, std::size_t rows, std::size_t cols, std::size_t K, const double* A,
                                  std::size_t a_row, std::size_t a_k, const double* B, std::size_t ldb, double* C,
                                  std::size_t ldc, const double* S) {
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t c = 0; c < cols; ++c) {
            double acc = add ? C[r * ldc + c] : 0.0;
            for (std::size_t k = 0; k < K; ++k) mul_add(acc, A[r * a_row + k * a_k], B[k * ldb + c]);
            C[r * ldc + c] = S ? acc * S[r * ldc + c] : acc;
        }
}

// the tiles, in the widest vectors the CPU has
inline void tiled(bool add, std::size_t rows, std::size_t cols, std::size_t K, const double* A, std::size_t a_row,
                  std::size_t a_k, const double* B, std::size_t ldb, double* C, std::size_t ldc, const double* S) {
#if defined(__x86_64__) && defined(__GNUC__)
    static const bool has_avx512 = __builtin_cpu_supports("avx512f"),
                      has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (has_avx512) return avx512(add, rows, cols, K, A, a_row, a_k, B, ldb, C, ldc, S);
    if (has_avx2) return avx2(add, rows, cols, K, A, a_row, a_k, B, ldb, C, ldc, S);
#endif
    dispatch_add<vec2>(add, rows, cols, K, A, a_row, a_k, B, ldb, C, ldc, S);
}

}  // namespace gemm_detail

// products of at most this many terms take the plain loop, inlined where it is called (the rank paper's 2 x 2
// net: 8)
constexpr std::size_t small_product = 64;

// C (rows x cols, row stride ldc) = A B, or += A B if `add`, where A(r, k) = A[r * a_row + k * a_k] and B is
// K x cols with row stride ldb. With S (laid out as C; add false), each entry of A B is multiplied by S's as it is
// stored, after its sum as without (the activations' slopes: one pass over C less).
FASTFLOW_ALWAYS_INLINE void gemm(bool add, std::size_t rows, std::size_t cols, std::size_t K, const double* A,
                                 std::size_t a_row, std::size_t a_k, const double* B, std::size_t ldb, double* C,
                                 std::size_t ldc, const double* S = nullptr) {
    if (rows * cols * K <= small_product)
        return gemm_detail::plain(add, rows, cols, K, A, a_row, a_k, B, ldb, C, ldc, S);
    gemm_detail::tiled(add, rows, cols, K, A, a_row, a_k, B, ldb, C, ldc, S);
}

}  // namespace fastflow
