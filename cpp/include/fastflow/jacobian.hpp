// Per-sample Jacobians dPhi_i/dtheta of any Model, for a given activation pattern: what the analysis of a limit
// point needs (KKT fits over the Clarke choices at zero pre-activations, Newton on a pattern's KKT system).
#pragma once
#include <algorithm>
#include <cstddef>
#include <vector>

#include "model.hpp"

namespace fastflow {

// slopes as given, or (nullptr) the value's own, sigma'(h) = 1[h > 0], kept in `own`: vjps need them explicit
inline const double* explicit_slopes(const Model& model, const double* theta, const double* X, std::size_t n,
                                     const double* slopes, std::vector<double>& own) {
    if (slopes || model.n_hidden() == 0) return slopes;
    own.resize(n * model.n_hidden());
    std::vector<double> scratch(model.scratch_size());
    model.preactivations(theta, X, n, nullptr, own.data(), scratch.data());
    for (double& s : own) s = s > 0.0 ? 1.0 : 0.0;
    return own.data();
}

// slopes (n x n_hidden) or nullptr for sigma'(h) = 1[h > 0]; J (n x d_out x n_params): one vjp per sample and output
inline void output_jacobian(const Model& model, const double* theta, const double* X, std::size_t n,
                            const double* slopes, double* J) {
    const std::size_t p = model.n_params(), c = model.d_out(), d = model.d_in(), u = model.n_hidden();
    std::vector<double> scratch(model.scratch_size()), G(c, 0.0), own;
    slopes = explicit_slopes(model, theta, X, n, slopes, own);
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t r = 0; r < c; ++r) {
            G[r] = 1.0;
            model.vjp(theta, X + i * d, 1, slopes ? slopes + i * u : nullptr, G.data(), J + (i * c + r) * p,
                      scratch.data());
            G[r] = 0.0;
        }
}

// Hess (rows.size() x n_params) = the rows `rows` of sum_i G_i . d^2 Phi_i / dtheta^2 (G: n x d_out), slopes as
// output_jacobian's
inline void weighted_hessian(const Model& model, const double* theta, const double* X, std::size_t n,
                             const double* slopes, const double* G, const std::vector<std::size_t>& rows,
                             double* Hess) {
    std::vector<double> own;
    slopes = explicit_slopes(model, theta, X, n, slopes, own);
    std::fill(Hess, Hess + rows.size() * model.n_params(), 0.0);
    model.add_hessian_rows(theta, X, n, slopes, G, rows, Hess);
}

// N (n x units.size() x n_params): dh_u/dtheta of the switches of the units `units` of every sample, with the given
// slopes (n x n_hidden)
inline void switch_normals(const Model& model, const double* theta, const double* X, std::size_t n,
                           const double* slopes, const std::vector<std::size_t>& units, double* N) {
    const std::size_t p = model.n_params(), H = model.n_hidden();
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t k = 0; k < units.size(); ++k)
            model.switch_normal(theta, X, slopes, i * H + units[k], N + (i * units.size() + k) * p);
}

}  // namespace fastflow
