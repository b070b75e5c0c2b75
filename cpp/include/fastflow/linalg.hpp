// Small dense linear algebra for the handful of active switching surfaces at an event.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace fastflow {

// A symmetric positive semi-definite k x k matrix Q (row-major), scaled to unit diagonal (switches of very
// different sizes are treated alike) and factored by Cholesky with symmetric pivoting. Directions with a scaled
// pivot below rel_tol are dropped (x = 0 there), which gives a least-squares solution when duplicated surfaces make
// Q singular; rank: the numerical rank. (Block-diagonal systems: BlockGram.)
struct PsdFactor {
    std::size_t k = 0, rank = 0;
    std::vector<std::size_t> perm;
    std::vector<double> L, scale;  // L: the factor in the leading rank columns (row-major k x k)

    void factor(std::vector<double> Q, std::size_t size, double rel_tol = 1e-13) {
        k = size, rank = 0;
        perm.resize(k);
        scale.resize(k);
        for (std::size_t i = 0; i < k; ++i) {
            perm[i] = i;
            scale[i] = Q[i * k + i] > 0.0 ? 1.0 / std::sqrt(Q[i * k + i]) : 0.0;
        }
        for (std::size_t i = 0; i < k; ++i)
            for (std::size_t j = 0; j < k; ++j) Q[i * k + j] *= scale[i] * scale[j];
        for (; rank < k; ++rank) {
            std::size_t best = rank;
            for (std::size_t i = rank + 1; i < k; ++i)
                if (Q[i * k + i] > Q[best * k + best]) best = i;
            if (Q[best * k + best] <= rel_tol) break;
            if (best != rank) {
                for (std::size_t c = 0; c < k; ++c) std::swap(Q[rank * k + c], Q[best * k + c]);
                for (std::size_t r = 0; r < k; ++r) std::swap(Q[r * k + rank], Q[r * k + best]);
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
        L = std::move(Q);
    }

    // x with Q x = b (least squares on the dropped directions)
    void solve(const std::vector<double>& b, std::vector<double>& x) const {
        x.assign(k, 0.0);
        // forward then backward substitution on the leading rank x rank factor
        std::vector<double> z(rank);
        for (std::size_t i = 0; i < rank; ++i) {
            double s = b[perm[i]] * scale[perm[i]];
            for (std::size_t c = 0; c < i; ++c) s -= L[i * k + c] * z[c];
            z[i] = s / L[i * k + i];
        }
        for (std::size_t ii = rank; ii-- > 0;) {
            double s = z[ii];
            for (std::size_t c = ii + 1; c < rank; ++c) s -= L[c * k + ii] * z[c];
            z[ii] = s / L[ii * k + ii];
        }
        for (std::size_t i = 0; i < rank; ++i) x[perm[i]] = z[i] * scale[perm[i]];
    }
};

// Solves Q x = b (PsdFactor); returns the numerical rank
inline std::size_t solve_psd(std::vector<double> Q, const std::vector<double>& b, std::size_t k,
                             std::vector<double>& x, double rel_tol = 1e-13) {
    PsdFactor f;
    f.factor(std::move(Q), k, rel_tol);
    f.solve(b, x);
    return f.rank;
}

inline double dot(const double* a, const double* b, std::size_t n) {
    double s = 0.0;
    for (std::size_t i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
}

inline double norm2(const double* a, std::size_t n) { return std::sqrt(dot(a, a, n)); }

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
