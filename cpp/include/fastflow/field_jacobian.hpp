// The exact Jacobian dV/dtheta of the velocity at fixed modes, for the implicit steps. With G_i the sample weights
// (Field::weights) and Phi_i the outputs, V = sum_i G_i grad Phi_i, so
//   dV/dtheta = sum_i (dG_i/dPhi_i) grad Phi_i grad Phi_i^T + sum_i G_i Hess Phi_i.
// On a two-layer net's sliding set the velocity is P V (P the orthogonal projection off the switches' normals,
// which are the samples' inputs and do not depend on theta), so its Jacobian is P dV/dtheta. A deeper net's sliding
// velocity is the minimal-norm point x of a hull of corner fields v_j (Hull::solve); on its corral's face
// (weights w_j, differences A = [v_j - v_0] = Q R) it is x = (I - Q Q^T) v_0, whose derivative is
//   dx = (I - Q Q^T) sum_j w_j dv_j - Q R^-T [x^T (dv_j - dv_0)]_j,
// each dv_j the Jacobian of the smooth field with corner j's slopes; made tangent (P) like the rest.
#pragma once
#include <algorithm>
#include <cstddef>
#include <vector>

#include "field.hpp"
#include "geometry.hpp"
#include "linalg.hpp"
#include "loss.hpp"
#include "minnorm.hpp"
#include "sliding.hpp"
#include "switch_state.hpp"
#include "types.hpp"
#include "velocity.hpp"

namespace fastflow {

// a field (a forward and a backward pass over the samples) costs about 6 n p floating-point operations
inline double field_flops(const Problem& pb) { return 6.0 * static_cast<double>(pb.n) * static_cast<double>(pb.p); }

class FieldJacobian {
public:
    FieldJacobian(const Problem& pb, Field& field, SwitchGeometry& geometry, const SwitchState& state,
                  Sliding& sliding, Velocity& velocity)
        : pb_(pb), field_(field), geo_(geometry), st_(state), sliding_(sliding), velocity_(velocity),
          unit_(pb.c, 0.0), grad_(pb.p) {}

    // the floating-point operations of one: a gradient per sample and output, their outer products, the Hessian
    static double flops(const Problem& pb) {
        const double n = static_cast<double>(pb.n), p = static_cast<double>(pb.p), c = static_cast<double>(pb.c);
        return 6.0 * n * c * p + 2.0 * n * c * p * p + pb.model.hessian_flops(pb.n);
    }

    // J (p x p, row-major) <- dV/dtheta at (tau, theta) in the integrator's time tau
    void operator()(double tau, const double* theta, double* J) {
        const std::size_t p = pb_.p;
        std::fill(J, J + p * p, 0.0);
        if (st_.Z.empty() || pb_.model.linear_switches()) {
            field_.count_evaluation();
            field_.log_loss_at(tau, theta, st_.slopes.data());
            add_smooth(theta, st_.slopes.data(), J);
        } else {
            hull(tau, theta, J);
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
            nm.gram.solve(rhs, lam);
            for (std::size_t a = 0; a < k; ++a)
                for (std::size_t r = 0; r < nm.len; ++r) J[(nm.offset[a] + r) * p + c] -= nm.row(a)[r] * lam[a];
        }
    }

private:
    // J += the Jacobian of the smooth field sum_i G_i grad Phi_i with these slopes, G_i from the field's last
    // evaluation (at theta)
    void add_smooth(const double* theta, const double* slopes, double* J) {
        const std::size_t p = pb_.p, m = pb_.n * pb_.c, c = pb_.c, H = pb_.H, d = pb_.model.d_in();
        const double* G = field_.weights();
        pb_.model.add_weighted_hessian(theta, pb_.X, pb_.n, slopes, G, J);
        for (std::size_t i = 0; i < m; ++i) {
            // grad Phi_i: a vjp of its own sample only
            const std::size_t sample = i / c;
            unit_[i % c] = 1.0;
            pb_.model.vjp(theta, pb_.X + sample * d, 1, H > 0 ? slopes + sample * H : nullptr, unit_.data(),
                          grad_.data(), field_.scratch());
            unit_[i % c] = 0.0;
            const double slope = weight_slope(i, G[i]);
            for (std::size_t r = 0; r < p; ++r)
                for (std::size_t q = 0; q < p; ++q) J[r * p + q] += slope * grad_[r] * grad_[q];
        }
    }

    // J <- the derivative of a deeper net's sliding velocity with its hull's corral held fixed (see the top)
    void hull(double tau, const double* theta, double* J) {
        const std::size_t p = pb_.p;
        std::vector<double> x(p), Jv(p * p), slopes;
        velocity_(tau, theta, x.data());  // the corral, and the field's weights at theta
        const auto& corral = sliding_.hull().last().corral;
        const std::size_t k = corral.weights.size();
        field_.count_evaluation(k);
        std::vector<double> xJ(k * p, 0.0);  // x^T dv_j
        for (std::size_t j = 0; j < k; ++j) {
            sliding_.hull().corner_slopes(j, st_.slopes.data(), slopes);
            std::fill(Jv.begin(), Jv.end(), 0.0);
            add_smooth(theta, slopes.data(), Jv.data());
            for (std::size_t r = 0; r < p; ++r)
                for (std::size_t q = 0; q < p; ++q) {
                    J[r * p + q] += corral.weights[j] * Jv[r * p + q];
                    xJ[j * p + q] += x[r] * Jv[r * p + q];
                }
        }
        const DifferenceQR f = difference_qr(corral.points, k, p);
        // Y = R^-T [x^T (dv_j - dv_0)] by forward substitution; J <- J - Q (Q^T J) - Q Y
        std::vector<double> Y(f.m * p, 0.0), QtJ(p);
        for (std::size_t a = 0; a < f.m; ++a) {
            if (!f.kept[a]) continue;
            double* y = &Y[a * p];
            for (std::size_t q = 0; q < p; ++q) y[q] = xJ[(a + 1) * p + q] - xJ[q];
            for (std::size_t b = 0; b < a; ++b)
                if (f.kept[b])
                    for (std::size_t q = 0; q < p; ++q) y[q] -= f.R[b * f.m + a] * Y[b * p + q];
            for (std::size_t q = 0; q < p; ++q) y[q] /= f.R[a * f.m + a];
        }
        for (std::size_t a = 0; a < f.m; ++a) {
            if (!f.kept[a]) continue;
            const double* qa = &f.Q[a * p];
            std::fill(QtJ.begin(), QtJ.end(), 0.0);
            for (std::size_t r = 0; r < p; ++r)
                for (std::size_t q = 0; q < p; ++q) QtJ[q] += qa[r] * J[r * p + q];
            for (std::size_t r = 0; r < p; ++r)
                for (std::size_t q = 0; q < p; ++q) J[r * p + q] -= qa[r] * (QtJ[q] + Y[a * p + q]);
        }
    }

    // dG_i/dPhi_i: -1 for the square loss (G = y - Phi), -|G| d(-log|G|)/dq for a margin loss
    double weight_slope(std::size_t i, double G) const {
        if (pb_.opt.loss == Loss::square) return -1.0;
        return -std::abs(G) * log_weight_slope(pb_.opt.loss, pb_.Y[i] * field_.outputs()[i]);
    }

    const Problem& pb_;
    Field& field_;
    SwitchGeometry& geo_;
    const SwitchState& st_;
    Sliding& sliding_;
    Velocity& velocity_;
    std::vector<double> unit_, grad_;
};

}  // namespace fastflow
