// Small dense linear algebra for the handful of active switching surfaces at an event.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace fastflow {

// Solves Q x = b for a symmetric positive semi-definite k x k matrix (row-major) by Cholesky with
// symmetric pivoting, after scaling Q to unit diagonal (switches of very different sizes are treated alike).
// Directions with a scaled pivot below rel_tol are dropped (x = 0 there), which gives a least-squares solution
// when duplicated surfaces make Q singular. Returns the numerical rank. (Block-diagonal systems: BlockGram.)
inline std::size_t solve_psd(const std::vector<double>& Q_in, const std::vector<double>& b_in, std::size_t k,
                             std::vector<double>& x, double rel_tol = 1e-13) {
    // per-thread workspace: the sliding velocity solves a few small blocks at every field evaluation (one
    // thread-local object: in a shared library each costs a call to find it)
    struct Workspace {
        std::vector<double> Q, b, scale, z;
        std::vector<std::size_t> perm;
    };
    thread_local Workspace work;
    auto& [Q, b, scale, z, perm] = work;
    Q.assign(Q_in.begin(), Q_in.begin() + static_cast<std::ptrdiff_t>(k * k));
    b.assign(b_in.begin(), b_in.begin() + static_cast<std::ptrdiff_t>(k));
    perm.resize(k), scale.resize(k);
    for (std::size_t i = 0; i < k; ++i) {
        perm[i] = i;
        scale[i] = Q[i * k + i] > 0.0 ? 1.0 / std::sqrt(Q[i * k + i]) : 0.0;
    }
    for (std::size_t i = 0; i < k; ++i) {
        b[i] *= scale[i];
        for (std::size_t j = 0; j < k; ++j) Q[i * k + j] *= scale[i] * scale[j];
    }
    x.assign(k, 0.0);
    if (k == 0) return 0;
    std::size_t rank = 0;
    for (; rank < k; ++rank) {
        std::size_t best = rank;
        for (std::size_t i = rank + 1; i < k; ++i)
            if (Q[i * k + i] > Q[best * k + best]) best = i;
        if (Q[best * k + best] <= rel_tol) break;
        if (best != rank) {
            for (std::size_t c = 0; c < k; ++c) std::swap(Q[rank * k + c], Q[best * k + c]);
            for (std::size_t r = 0; r < k; ++r) std::swap(Q[r * k + rank], Q[r * k + best]);
            std::swap(b[rank], b[best]);
            std::swap(perm[rank], perm[best]);
        }
        const double piv = std::sqrt(Q[rank * k + rank]);
        Q[rank * k + rank] = piv;
        for (std::size_t i = rank + 1; i < k; ++i) Q[i * k + rank] /= piv;
        // the whole trailing block, both triangles: a later pivot swap reads rows and columns alike
        for (std::size_t i = rank + 1; i < k; ++i)
            for (std::size_t c = rank + 1; c < k; ++c) Q[i * k + c] -= Q[i * k + rank] * Q[c * k + rank];
        for (std::size_t i = rank + 1; i < k; ++i) Q[rank * k + i] = Q[i * k + rank];
    }
    // forward then backward substitution on the leading rank x rank factor
    z.resize(rank);
    for (std::size_t i = 0; i < rank; ++i) {
        double s = b[i];
        for (std::size_t c = 0; c < i; ++c) s -= Q[i * k + c] * z[c];
        z[i] = s / Q[i * k + i];
    }
    for (std::size_t ii = rank; ii-- > 0;) {
        double s = z[ii];
        for (std::size_t c = ii + 1; c < rank; ++c) s -= Q[c * k + ii] * z[c];
        z[ii] = s / Q[ii * k + ii];
    }
    for (std::size_t i = 0; i < rank; ++i) x[perm[i]] = z[i] * scale[perm[i]];
    return rank;
}

inline double dot(const double* a, const double* b, std::size_t n) {
    double s = 0.0;
    for (std::size_t i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
}

// Euclidean norm; a sum of squares that underflows (entries below ~1e-154, e.g. a field whose loss weights are
// e^-600) or overflows (above ~1e154, e.g. weights e^530 of an initialisation's margins of -530) is summed again
// scaled by the largest entry, so that only an all-zero vector has norm 0 and only an infinite one norm inf
inline double norm2(const double* a, std::size_t n) {
    const double sum = dot(a, a, n);
    if ((sum > 0.0 && sum < INFINITY) || n == 0) return std::sqrt(sum);
    double largest = 0.0;
    for (std::size_t i = 0; i < n; ++i) largest = std::max(largest, std::abs(a[i]));
    if (largest == 0.0 || !(largest < INFINITY)) return largest;
    double scaled = 0.0;
    for (std::size_t i = 0; i < n; ++i) scaled += (a[i] / largest) * (a[i] / largest);
    return largest * std::sqrt(scaled);
}

}  // namespace fastflow

namespace fastflow {

// In-place LU factorisation with partial pivoting of an n x n row-major matrix.
inline void lu_factor(std::vector<double>& A, std::size_t n, std::vector<std::size_t>& piv) {
    piv.resize(n);
    for (std::size_t c = 0; c < n; ++c) {
        std::size_t best = c;
        for (std::size_t r = c + 1; r < n; ++r)
            if (std::abs(A[r * n + c]) > std::abs(A[best * n + c])) best = r;
        piv[c] = best;
        if (best != c)
            for (std::size_t q = 0; q < n; ++q) std::swap(A[c * n + q], A[best * n + q]);
        const double d = A[c * n + c];
        if (d == 0.0) continue;
        for (std::size_t r = c + 1; r < n; ++r) {
            const double l = A[r * n + c] /= d;
            if (l != 0.0)
                for (std::size_t q = c + 1; q < n; ++q) A[r * n + q] -= l * A[c * n + q];
        }
    }
}

// |lambda|_max of the n x n matrix J (row-major) to within a factor near 1: power iteration from a fixed start
// (deterministic)
inline double spectral_radius(const std::vector<double>& J, std::size_t n, int iterations) {
    std::vector<double> y(n), f(n);
    for (std::size_t q = 0; q < n; ++q) y[q] = 1.0 + 0.5 * static_cast<double>(q % 7);
    double radius = 0.0;
    for (int it = 0; it < iterations; ++it) {
        const double norm = norm2(y.data(), n);
        if (!(norm > 0.0)) return radius;
        for (std::size_t r = 0; r < n; ++r) {
            double v = 0.0;
            for (std::size_t q = 0; q < n; ++q) v += J[r * n + q] * y[q];
            f[r] = v / norm;
        }
        radius = norm2(f.data(), n);
        std::swap(y, f);
    }
    return radius;
}

// lu_factor swaps whole rows, multipliers included (P A = L U as in LAPACK): every swap applies to b before the
// forward substitution
inline void lu_solve(const std::vector<double>& A, std::size_t n, const std::vector<std::size_t>& piv, double* b) {
    for (std::size_t c = 0; c < n; ++c)
        if (piv[c] != c) std::swap(b[c], b[piv[c]]);
    for (std::size_t c = 0; c < n; ++c)
        for (std::size_t r = c + 1; r < n; ++r) b[r] -= A[r * n + c] * b[c];
    for (std::size_t r = n; r-- > 0;) {
        for (std::size_t q = r + 1; q < n; ++q) b[r] -= A[r * n + q] * b[q];
        b[r] /= A[r * n + r];
    }
}

}  // namespace fastflow
