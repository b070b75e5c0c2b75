// Minimal-norm element of the Clarke subdifferential on a set of switching surfaces:
//   min_s 1/2 |F0 + D s|^2,  s in [0,1]^k   (a bounded least-squares problem in k = |Z| variables)
// solved by a primal active-set method on Q = D^T D, b = D^T F0.
#pragma once
#include <cmath>
#include <cstddef>
#include <vector>

#include "linalg.hpp"

namespace fastflow {

// f0_norm = |F0| sets each variable's own optimality tolerance (|D_i| |F0| scales its gradient), so a switch whose
// direction is tiny next to the others is still decided on its own merits.
inline std::vector<double> box_qp(const std::vector<double>& Q, const std::vector<double>& b, std::size_t k,
                                  double f0_norm) {
    enum : int { lower = 0, upper = 1, free_ = 2 };
    std::vector<int> state(k, lower);
    std::vector<double> s(k, 0.0);
    std::vector<double> tol(k);
    for (std::size_t i = 0; i < k; ++i) tol[i] = 1e-13 * std::sqrt(Q[i * k + i]) * f0_norm;
    std::vector<std::size_t> fr;
    std::vector<double> Qf, rhs, z;
    for (std::size_t iter = 0; iter < 20 * k + 20; ++iter) {
        fr.clear();
        for (std::size_t i = 0; i < k; ++i)
            if (state[i] == free_) fr.push_back(i);
        const std::size_t m = fr.size();
        Qf.assign(m * m, 0.0);
        rhs.assign(m, 0.0);
        for (std::size_t a = 0; a < m; ++a) {
            double r = -b[fr[a]];
            for (std::size_t j = 0; j < k; ++j)
                if (state[j] != free_) r -= Q[fr[a] * k + j] * s[j];
            rhs[a] = r;
            for (std::size_t c = 0; c < m; ++c) Qf[a * m + c] = Q[fr[a] * k + fr[c]];
        }
        solve_psd(Qf, rhs, m, z);
        // longest feasible step from the current s towards the free-set minimiser
        double alpha = 1.0;
        std::size_t blocking = k;
        for (std::size_t a = 0; a < m; ++a) {
            const double cur = s[fr[a]], d = z[a] - cur;
            if (z[a] < 0.0 && d < 0.0 && -cur / d < alpha) alpha = -cur / d, blocking = fr[a];
            if (z[a] > 1.0 && d > 0.0 && (1.0 - cur) / d < alpha) alpha = (1.0 - cur) / d, blocking = fr[a];
        }
        for (std::size_t a = 0; a < m; ++a) s[fr[a]] += alpha * (z[a] - s[fr[a]]);
        if (blocking < k) {
            s[blocking] = s[blocking] < 0.5 ? 0.0 : 1.0;
            state[blocking] = s[blocking] == 0.0 ? lower : upper;
            continue;
        }
        // optimal on the free set: free the fixed variable that violates its KKT sign the most
        std::size_t worst = k;
        double worst_g = 0.0;
        for (std::size_t i = 0; i < k; ++i) {
            if (state[i] == free_) continue;
            double g = b[i];
            for (std::size_t j = 0; j < k; ++j) g += Q[i * k + j] * s[j];
            const double violation = (state[i] == lower ? -g : g) - tol[i];
            if (violation > worst_g) worst_g = violation, worst = i;
        }
        if (worst == k) break;
        state[worst] = free_;
    }
    return s;
}

}  // namespace fastflow
