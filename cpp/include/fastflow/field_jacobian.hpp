// The exact Jacobian dV/dtheta of the velocity at fixed modes, for the implicit steps. With G_i the sample weights
// (Field::weights) and Phi_i the outputs, V = sum_i G_i grad Phi_i, so
//   dV/dtheta = sum_i (dG_i/dPhi_i) grad Phi_i grad Phi_i^T + sum_i G_i Hess Phi_i.
// On a two-layer net's sliding set the velocity is P V (P the orthogonal projection off the switches' normals,
// which are the samples' inputs and do not depend on theta), so its Jacobian is P dV/dtheta.
#pragma once
#include <cstddef>
#include <vector>

#include "field.hpp"
#include "geometry.hpp"
#include "linalg.hpp"
#include "loss.hpp"
#include "switch_state.hpp"
#include "types.hpp"

namespace fastflow {

// a field (a forward and a backward pass over the samples) costs about 6 n p floating-point operations
inline double field_flops(const Problem& pb) { return 6.0 * static_cast<double>(pb.n) * static_cast<double>(pb.p); }

class FieldJacobian {
public:
    FieldJacobian(const Problem& pb, Field& field, SwitchGeometry& geometry, const SwitchState& state)
        : pb_(pb), field_(field), geo_(geometry), st_(state), unit_(pb.c, 0.0), grad_(pb.p) {}

    // whether the current modes have one: no sliding, or a sliding set with fixed normals. (Deeper nets slide on
    // curved surfaces, with the minimal-norm point of a hull of corner fields as velocity.)
    bool available() const { return st_.Z.empty() || pb_.model.linear_switches(); }

    // the floating-point operations of one: a gradient per sample and output, their outer products, the Hessian
    static double flops(const Problem& pb) {
        const double n = static_cast<double>(pb.n), p = static_cast<double>(pb.p), c = static_cast<double>(pb.c);
        return 6.0 * n * c * p + 2.0 * n * c * p * p + pb.model.hessian_flops(pb.n);
    }

    // J (p x p, row-major) <- dV/dtheta at (tau, theta) in the integrator's time tau
    void operator()(double tau, const double* theta, double* J) {
        const std::size_t p = pb_.p, m = pb_.n * pb_.c;
        std::fill(J, J + p * p, 0.0);
        field_.count_evaluation();
        field_.log_loss_at(tau, theta, st_.slopes.data());
        const double* G = field_.weights();
        pb_.model.add_weighted_hessian(theta, pb_.X, pb_.n, st_.slopes.data(), G, J);
        const std::size_t c = pb_.c, H = pb_.H, d = pb_.model.d_in();
        for (std::size_t i = 0; i < m; ++i) {
            // grad Phi_i: a vjp of its own sample only
            const std::size_t sample = i / c;
            unit_[i % c] = 1.0;
            pb_.model.vjp(theta, pb_.X + sample * d, 1, H > 0 ? st_.slopes.data() + sample * H : nullptr,
                          unit_.data(), grad_.data(), field_.scratch());
            unit_[i % c] = 0.0;
            const double slope = weight_slope(i, G[i]);
            for (std::size_t r = 0; r < p; ++r)
                for (std::size_t q = 0; q < p; ++q) J[r * p + q] += slope * grad_[r] * grad_[q];
        }
        if (!st_.Z.empty()) project(theta, J);
    }

    // J <- P J (P: the projection off the sliding switches' normals), column by column
    void project(const double* theta, double* J) {
        const std::size_t p = pb_.p, k = st_.Z.size();
        const Normals nm = geo_.normals(theta, st_.slopes.data(), st_.Z);
        std::vector<double> rhs(k), lam;
        for (std::size_t c = 0; c < p; ++c) {
            for (std::size_t a = 0; a < k; ++a) {
                double v = 0.0;
                for (std::size_t r = 0; r < nm.len; ++r) v += nm.row(a)[r] * J[(nm.offset[a] + r) * p + c];
                rhs[a] = v;
            }
            solve_psd(nm.gram, rhs, k, lam, 1e-13, nm.blocks());
            for (std::size_t a = 0; a < k; ++a)
                for (std::size_t r = 0; r < nm.len; ++r) J[(nm.offset[a] + r) * p + c] -= nm.row(a)[r] * lam[a];
        }
    }

private:
    // dG_i/dPhi_i: -1 for the square loss (G = y - Phi), -|G| d(-log|G|)/dq for a margin loss
    double weight_slope(std::size_t i, double G) const {
        if (pb_.opt.loss == Loss::square) return -1.0;
        return -std::abs(G) * log_weight_slope(pb_.opt.loss, pb_.Y[i] * field_.outputs()[i]);
    }

    const Problem& pb_;
    Field& field_;
    SwitchGeometry& geo_;
    const SwitchState& st_;
    std::vector<double> unit_, grad_;
};

}  // namespace fastflow
