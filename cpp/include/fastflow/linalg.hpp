// Small dense linear algebra for the handful of active switching surfaces at an event.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace fastflow {

// The pivoted Cholesky factor of a symmetric positive semi-definite k x k matrix Q (row-major), after scaling Q to
// unit diagonal (switches of very different sizes are treated alike). Directions with a scaled pivot below rel_tol
// are dropped (x = 0 there), which gives a least-squares solution when duplicated surfaces make Q singular. Kept,
// it solves again without factoring (BlockGram: a block that is a rescaling of a fixed Gram matrix).
class PsdFactor {
public:
    void factor(const double* Q_in, std::size_t k, double rel_tol = 1e-13) {
        k_ = k, rank_ = 0;
        Q_.assign(Q_in, Q_in + k * k);
        perm_.resize(k), scale_.resize(k);
        for (std::size_t i = 0; i < k; ++i) {
            perm_[i] = i;
            scale_[i] = Q_[i * k + i] > 0.0 ? 1.0 / std::sqrt(Q_[i * k + i]) : 0.0;
        }
        for (std::size_t i = 0; i < k; ++i)
            for (std::size_t j = 0; j < k; ++j) Q_[i * k + j] *= scale_[i] * scale_[j];
        for (; rank_ < k; ++rank_) {
            const std::size_t r = rank_;
            std::size_t best = r;
            for (std::size_t i = r + 1; i < k; ++i)
                if (Q_[i * k + i] > Q_[best * k + best]) best = i;
            if (Q_[best * k + best] <= rel_tol) break;
            if (best != r) {
                for (std::size_t c = 0; c < k; ++c) std::swap(Q_[r * k + c], Q_[best * k + c]);
                for (std::size_t i = 0; i < k; ++i) std::swap(Q_[i * k + r], Q_[i * k + best]);
                std::swap(perm_[r], perm_[best]);
            }
            const double piv = std::sqrt(Q_[r * k + r]);
            Q_[r * k + r] = piv;
            for (std::size_t i = r + 1; i < k; ++i) Q_[i * k + r] /= piv;
            // the whole trailing block, both triangles: a later pivot swap reads rows and columns alike
            for (std::size_t i = r + 1; i < k; ++i)
                for (std::size_t c = r + 1; c < k; ++c) Q_[i * k + c] -= Q_[i * k + r] * Q_[c * k + r];
            for (std::size_t i = r + 1; i < k; ++i) Q_[r * k + i] = Q_[i * k + r];
        }
    }

    std::size_t rank() const { return rank_; }

    // x (k entries) with Q x = b: forward then backward substitution on the leading rank x rank factor
    void solve(const double* b, double* x) const {
        const std::size_t k = k_;
        z_.resize(rank_);
        for (std::size_t i = 0; i < rank_; ++i) {
            double s = b[perm_[i]] * scale_[perm_[i]];
            for (std::size_t c = 0; c < i; ++c) s -= Q_[i * k + c] * z_[c];
            z_[i] = s / Q_[i * k + i];
        }
        for (std::size_t ii = rank_; ii-- > 0;) {
            double s = z_[ii];
            for (std::size_t c = ii + 1; c < rank_; ++c) s -= Q_[c * k + ii] * z_[c];
            z_[ii] = s / Q_[ii * k + ii];
        }
        std::fill(x, x + k, 0.0);
        for (std::size_t i = 0; i < rank_; ++i) x[perm_[i]] = z_[i] * scale_[perm_[i]];
    }

private:
    std::vector<double> Q_, scale_;
    std::vector<std::size_t> perm_;
    std::size_t k_ = 0, rank_ = 0;
    mutable std::vector<double> z_;
};

// Solves Q x = b (PsdFactor) and returns the numerical rank. (Block-diagonal systems: BlockGram.)
inline std::size_t solve_psd(const std::vector<double>& Q, const std::vector<double>& b, std::size_t k,
                             std::vector<double>& x, double rel_tol = 1e-13) {
    thread_local PsdFactor factor;  // per-thread workspace: the sliding velocity solves blocks at every evaluation
    factor.factor(Q.data(), k, rel_tol);
    x.resize(k);
    factor.solve(b.data(), x.data());
    return factor.rank();
}

inline double dot(const double* a, const double* b, std::size_t n) {
    double s = 0.0;
    for (std::size_t i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
}

// out[r] = dot(a[r], b[r], n) for four pairs at once, each summed in dot's order (the same bits): one sum's adds
// wait on each other, four sums' overlap
inline void dot4(const double* const a[4], const double* const b[4], std::size_t n, double* out) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        s0 += a[0][i] * b[0][i];
        s1 += a[1][i] * b[1][i];
        s2 += a[2][i] * b[2][i];
        s3 += a[3][i] * b[3][i];
    }
    out[0] = s0, out[1] = s1, out[2] = s2, out[3] = s3;
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

// whether a and b point the same way to rounding: two switches' normals on one surface
inline bool same_direction(const double* a, const double* b, std::size_t n) {
    const double along = dot(a, b, n);
    return along > 0.0 && along >= (1.0 - 1e-12) * norm2(a, n) * norm2(b, n);
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
