// Wolfe's minimum-norm-point algorithm (Math. Programming 11, 1976) on a polytope given by its linear
// minimisation oracle: the minimal-norm element of a Clarke subdifferential that is the convex hull of the one-sided
// fields of a deep network (not an affine image of a box, as for depth 2).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "linalg.hpp"

namespace fastflow {

// lmo(x, v) writes into v (length p) a vertex of the polytope minimising <x, v>. Returns the minimal-norm point in x.
template <class Lmo>
void min_norm_point(std::size_t p, Lmo&& lmo, double* x, std::size_t max_iter = 500) {
    auto dot_p = [p](const double* a, const double* b) {
        double s = 0.0;
        for (std::size_t q = 0; q < p; ++q) s += a[q] * b[q];
        return s;
    };
    std::vector<double> S, lambda, v(p), y(p), alpha;
    // a vertex that overflows (the field at a trial state of a step too long) makes the answer non-finite: the
    // step is rejected, instead of a corral that never sheds a point
    auto overflows = [&] {
        if (std::all_of(v.begin(), v.end(), [](double a) { return std::isfinite(a); })) return false;
        std::copy(v.begin(), v.end(), x);
        return true;
    };
    std::fill(x, x + p, 0.0);
    lmo(x, v.data());
    if (overflows()) return;
    S.assign(v.begin(), v.end());
    lambda.assign(1, 1.0);
    std::copy(v.begin(), v.end(), x);
    double scale = dot_p(v.data(), v.data());
    for (std::size_t iter = 0; iter < max_iter; ++iter) {
        lmo(x, v.data());
        if (overflows()) return;
        scale = std::max(scale, dot_p(v.data(), v.data()));
        const double xx = dot_p(x, x);
        // duality gap <x, x - v> bounds |x - x*|^2: stop at rounding
        if (xx - dot_p(x, v.data()) <= 1e-15 * scale) return;
        S.insert(S.end(), v.begin(), v.end());
        lambda.push_back(0.0);
        while (true) {
            // the affine minimiser of the corral, y = s_0 + sum_j beta_j (s_j - s_0): least squares in beta, which
            // stays well posed when the corral is affinely dependent or its minimiser is the origin
            const std::size_t k = lambda.size();
            std::vector<double> M((k - 1) * (k - 1)), rhs(k - 1), beta;
            std::vector<double> diff((k - 1) * p);
            for (std::size_t a = 1; a < k; ++a)
                for (std::size_t q = 0; q < p; ++q) diff[(a - 1) * p + q] = S[a * p + q] - S[q];
            for (std::size_t a = 0; a + 1 < k; ++a) {
                rhs[a] = -dot_p(&diff[a * p], S.data());
                for (std::size_t b = 0; b <= a; ++b)
                    M[a * (k - 1) + b] = M[b * (k - 1) + a] = dot_p(&diff[a * p], &diff[b * p]);
            }
            solve_psd(M, rhs, k - 1, beta);
            alpha.assign(k, 0.0);
            alpha[0] = 1.0;
            for (std::size_t a = 1; a < k; ++a) alpha[a] = beta[a - 1], alpha[0] -= beta[a - 1];
            const double floor = 1e-14;
            if (*std::min_element(alpha.begin(), alpha.end()) > floor) {
                lambda = alpha;
                break;
            }
            // move towards the affine minimiser until a weight reaches 0, and drop those points
            double step = 1.0;
            std::size_t limiting = k;
            for (std::size_t a = 0; a < k; ++a)
                if (alpha[a] <= floor && lambda[a] / (lambda[a] - alpha[a]) <= step)
                    step = lambda[a] / (lambda[a] - alpha[a]), limiting = a;
            std::vector<double> keptS, keptL;
            for (std::size_t a = 0; a < k; ++a) {
                const double w = lambda[a] + step * (alpha[a] - lambda[a]);
                if (w <= floor || a == limiting) continue;  // the limiting point goes even if rounding keeps w > 0
                keptL.push_back(w);
                keptS.insert(keptS.end(), S.begin() + static_cast<std::ptrdiff_t>(a * p),
                             S.begin() + static_cast<std::ptrdiff_t>((a + 1) * p));
            }
            if (keptL.empty()) break;  // rounding: keep the last corral
            S.swap(keptS), lambda.swap(keptL);
            double sum = 0.0;
            for (double w : lambda) sum += w;
            for (double& w : lambda) w /= sum;
        }
        std::fill(x, x + p, 0.0);
        for (std::size_t a = 0; a < lambda.size(); ++a)
            for (std::size_t q = 0; q < p; ++q) x[q] += lambda[a] * S[a * p + q];
    }
}

}  // namespace fastflow
