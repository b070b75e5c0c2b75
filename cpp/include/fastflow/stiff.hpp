// The stiff phase: linearly implicit Euler with polynomial extrapolation (as in SEULEX), in u = log tau, where
// d theta/du = tau F(tau, theta); the system is made autonomous by carrying u along. Late in a classification run
// the margins of the support relax at rate O(1) while the direction moves like 1/tau.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "dense.hpp"
#include "field.hpp"
#include "field_jacobian.hpp"
#include "geometry.hpp"
#include "linalg.hpp"
#include "sliding.hpp"
#include "step_control.hpp"
#include "switch_state.hpp"
#include "types.hpp"
#include "velocity.hpp"

namespace fastflow {

class StiffStepper {
public:
    static constexpr std::size_t max_params = 256;        // dense Jacobians beyond that cost more than they save
    static constexpr std::size_t columns = 5;             // extrapolation to order 5

    StiffStepper(const Problem& pb, Field& field, Velocity& velocity, SwitchGeometry& geometry,
                 const SwitchState& state, FieldJacobian& field_jacobian)
        : pb_(pb), field_(field), velocity_(velocity), geo_(geometry), st_(state), field_jacobian_(field_jacobian),
          cost_ratio_(cost_ratio(pb)) {}

    // the Jacobian must be formed again (a retry after a rejection starts from the same state and reuses it)
    void new_state() { jacobian_current_ = false; }

    // One step from theta (where log L = log_loss0) to y1 of size H in u; returns the scaled error norm (> 1: reject).
    double attempt(double tau, double H, const double* theta, double log_loss0, double* y1) {
        const double u0 = std::log(tau);
        const std::size_t p = pb_.p;
        if (!jacobian_current_) {
            jacobian(tau, theta);
            radius_ = spectral_radius(J_, p, radius_iterations);
            jacobian_current_ = true;
        }
        fu_.resize(p);
        // every weight carries the factor dt/dtau = e^tau, so f(u, theta) = tau e^tau g(theta): df/du = (1 + tau) f
        field_u(u0, theta, fu_.data());
        for (std::size_t r = 0; r < p; ++r) fu_[r] *= 1.0 + tau;
        // rows T[j] of the extrapolation tableau, j = 1..K substeps
        T_.assign(columns * columns * p, 0.0);
        auto T = [&](std::size_t j, std::size_t l) { return &T_[(j * columns + l) * p]; };
        std::vector<double> M(p * p), rhs(p);
        std::vector<std::size_t> piv;
        for (std::size_t j = 0; j < columns; ++j) {
            const std::size_t nsub = j + 1;
            const double hs = H / static_cast<double>(nsub);
            for (std::size_t r = 0; r < p; ++r)
                for (std::size_t c = 0; c < p; ++c) M[r * p + c] = (r == c ? 1.0 : 0.0) - hs * J_[r * p + c];
            lu_factor(M, p, piv);
            double* y = T(j, 0);
            std::copy(theta, theta + p, y);
            for (std::size_t i = 0; i < nsub; ++i) {
                field_u(u0 + static_cast<double>(i) * hs, y, rhs.data());
                for (std::size_t r = 0; r < p; ++r) rhs[r] = hs * rhs[r] + hs * hs * fu_[r];
                lu_solve(M, p, piv, rhs.data());
                for (std::size_t r = 0; r < p; ++r) y[r] += rhs[r];
            }
            for (std::size_t l = 1; l <= j; ++l) {
                const double ratio = static_cast<double>(nsub) / static_cast<double>(nsub - l) - 1.0;
                for (std::size_t r = 0; r < p; ++r)
                    T(j, l)[r] = T(j, l - 1)[r] + (T(j, l - 1)[r] - T(j - 1, l - 1)[r]) / ratio;
            }
        }
        const std::size_t K = columns - 1;
        const double* best = T(K, K);
        const double* lower = T(K, K - 1);
        // late in the run the direction is what is meant: errors relative to ||theta|| (components that tend to 0
        // would otherwise hold the step at the rounding of the linear solves)
        const double size = norm2(theta, p) / std::sqrt(static_cast<double>(p));
        const double rtol = pb_.opt.rtol, atol = pb_.opt.atol;
        double err = 0.0;
        for (std::size_t q = 0; q < p; ++q) {
            y1[q] = best[q];
            const double sc = atol + rtol * std::max({std::abs(theta[q]), std::abs(best[q]), 1e-3 * size});
            const double e = (best[q] - lower[q]) / sc;
            err += e * e;
        }
        // nor may it move a conserved quantity by more than the tolerance
        const double excess = balance_excess(pb_.model, theta, y1, rtol, atol);
        err = std::max({err, off_surfaces(y1, size), static_cast<double>(p) * excess * excess});
        // gradient flow never increases the loss: a step that does jumped to a wrong branch of the implicit map
        if (field_.log_loss_at(tau, y1, st_.slopes.data()) > log_loss0 + 1e-13 * std::max(1.0, std::abs(log_loss0)))
            return 10.0;
        // the end derivative must agree with the secant: otherwise y1 is off the slow manifold by more than the
        // weights e^{tau - q} tolerate (this is what limits a run to log t of about 0.1 / rtol)
        field_u(u0, theta, f_start_.data());
        field_u(u0 + H, y1, f_end_.data());
        double mismatch = 0.0, secant = 0.0;
        for (std::size_t q = 0; q < p; ++q) {
            const double dy = y1[q] - theta[q];
            mismatch += (H * f_end_[q] - dy) * (H * f_end_[q] - dy);
            secant += dy * dy;
        }
        if (!(mismatch <= 0.25 * secant + atol * atol)) return std::max(10.0, 2.0 * err);
        return std::sqrt(err / static_cast<double>(p));
    }

    // whether a step of size H in u does more than explicit steps could for its cost (as RosenbrockStepper's)
    bool pays_off(double H) const {
        return H * radius_ >= dopri5::STABILITY_BOUND * cost_ratio_;
    }

    // the dense output of the accepted step (its end derivatives are those of the last attempt)
    void hermite(const double* theta, const double* y1, double H, double* coef) const {
        hermite_coefficients(theta, y1, f_start_.data(), f_end_.data(), H, pb_.p, coef);
    }

private:
    static constexpr int radius_iterations = 8;

    // A step's cost over an explicit one's, in floating-point operations: the Jacobian, one LU
    // factorization per column, the 1 + 2 + ... + columns substeps' fields and solves, three more fields and the
    // spectral radius, against the six new fields of a Dormand-Prince step
    static double cost_ratio(const Problem& pb) {
        const double p = static_cast<double>(pb.p), field = field_flops(pb);
        const double substeps = static_cast<double>(columns * (columns + 1) / 2);
        const double step = FieldJacobian::flops(pb) + static_cast<double>(columns) * 2.0 * p * p * p / 3.0 +
                            substeps * (field + 2.0 * p * p) + 3.0 * field + 2.0 * radius_iterations * p * p;
        return step / (6.0 * field);
    }

    void field_u(double u, const double* th, double* out) {
        const double tau = std::exp(u);
        velocity_(tau, th, out);
        for (std::size_t q = 0; q < pb_.p; ++q) out[q] *= tau;
    }

    // J_ = d f_u / d theta at (log tau, theta) = tau dV/dtheta
    void jacobian(double tau, const double* theta) {
        J_.resize(pb_.p * pb_.p);
        f_start_.resize(pb_.p), f_end_.resize(pb_.p);
        field_jacobian_(tau, theta, J_.data());
        for (double& v : J_) v *= tau;
    }

    // Every substep is tangent to the sliding surfaces, so y1 ends on them but for the rounding of the linear
    // solves, which the stiffness amplifies: a step that ends off them by more than the tolerance is wrong (its
    // extrapolation error estimate can miss it, and projecting it back would break the conservation laws).
    double off_surfaces(const double* y1, double size) {
        double err = 0.0;
        if (st_.Z.empty()) return err;
        const std::vector<double>& h = geo_.preactivations(y1, st_.slopes.data());
        std::vector<double> n(pb_.p);
        for (std::size_t z : st_.Z) {
            geo_.normal(y1, st_.slopes.data(), z, n.data());
            const double nn = norm2(n.data(), pb_.p);
            const double off = nn > 0.0 ? std::abs(h[z]) / nn / (pb_.opt.atol + pb_.opt.rtol * size) : 0.0;
            err = std::max(err, static_cast<double>(pb_.p) * off * off);
        }
        return err;
    }

    const Problem& pb_;
    Field& field_;
    Velocity& velocity_;
    SwitchGeometry& geo_;
    const SwitchState& st_;
    FieldJacobian& field_jacobian_;
    std::vector<double> J_, T_, fu_, f_start_, f_end_;  // f_u at the step's ends, for the dense output
    bool jacobian_current_ = false;  // J_ is the Jacobian at the current step's start
    double radius_ = 0.0;            // its spectral radius
    double cost_ratio_;
};

}  // namespace fastflow
