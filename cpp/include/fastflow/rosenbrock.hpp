// The implicit phase of a flow that settles at a finite point (the square loss; classification of data the net
// does not separate): RODAS4, a stiffly accurate, L-stable Rosenbrock method of order 4 with an embedded order-3
// solution, in the integrator's own time tau, with the exact Jacobian of the velocity. Its stages solve
//   (I/(h gamma) - J) K_i = V(tau + alpha_i h, Y_i) + sum_j C_ij K_j / h + gamma_i h dV/dtau,
// Y_i = theta + sum_j A_ij K_j; the step ends at theta + sum_i M_i K_i, and sum_i E_i K_i estimates its error.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "field.hpp"
#include "field_jacobian.hpp"
#include "linalg.hpp"
#include "model.hpp"
#include "sliding.hpp"
#include "step_control.hpp"
#include "types.hpp"
#include "velocity.hpp"

namespace fastflow {

// Hairer & Wanner's RODAS4 in the form above: a_ij and c_ij with the Jacobian factored out (gamma = 1/4)
namespace rodas4 {
constexpr int STAGES = 6;
constexpr int ERROR_ORDER = 3;  // of the embedded solution
constexpr double GAMMA = 0.25;
constexpr double A[STAGES][STAGES] = {
    {0, 0, 0, 0, 0, 0},
    {1.544, 0, 0, 0, 0, 0},
    {0.9466785280815826, 0.2557011698983284, 0, 0, 0, 0},
    {3.314825187068521, 2.896124015972201, 0.9986419139977817, 0, 0, 0},
    {1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950, 0, 0},
    {1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950, 1, 0}};
constexpr double C[STAGES][STAGES] = {
    {0, 0, 0, 0, 0, 0},
    {-5.6688, 0, 0, 0, 0, 0},
    {-2.430093356833875, -0.2063599157091915, 0, 0, 0, 0},
    {-0.1073529058151375, -9.594562251023355, -20.47028614809616, 0, 0, 0},
    {7.496443313967647, -10.24680431464352, -33.99990352819905, 11.70890893206160, 0, 0},
    {8.083246795921522, -7.981132988064893, -31.52159432874371, 16.31930543123136, -6.058818238834054, 0}};
constexpr double ALPHA[STAGES] = {0, 0.386, 0.21, 0.63, 1, 1};
constexpr double GAMMA_SUM[STAGES] = {0.25, -0.1043, 0.1035, -0.0362, 0, 0};
constexpr double M[STAGES] = {1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950, 1, 1};
constexpr double E[STAGES] = {0, 0, 0, 0, 0, 1};
}  // namespace rodas4

class RosenbrockStepper {
public:
    static constexpr std::size_t max_params = 256;  // dense LU beyond that costs more than it saves
    static constexpr double EXPONENT = -1.0 / (rodas4::ERROR_ORDER + 1);

    RosenbrockStepper(const Problem& pb, Velocity& velocity, Field& field, FieldJacobian& jacobian)
        // (the dense p x p matrices only where they are used: at n = 1000, width 128 they would take 680 MB, and
        // their zero-filling 0.3 s of every flow)
        : pb_(pb), velocity_(velocity), field_(field), jacobian_(jacobian), J_(available() ? pb.p * pb.p : 0),
          G_(available() ? pb.p * pb.p : 0), f_(pb.p), y_(pb.p), f1_(pb.p), cost_ratio_(cost_ratio(pb)) {
        for (auto& k : K_) k.resize(pb.p);
    }

    // whether the problem is small enough to be stepped implicitly
    bool available() const { return pb_.p <= max_params; }

    // the Jacobian must be formed again (a retry after a rejection starts from the same state and reuses it)
    void new_state() { jacobian_current_ = false; }

    // One step of size h from (tau, theta), where V = f0 and log L = log_loss0, to y1; returns the scaled error norm
    // (> 1: reject). The field at y1 is then end_field(), and end_log_loss() log L there.
    double attempt(double tau, double h, const double* theta, const double* f0, double log_loss0, double* y1) {
        using namespace rodas4;
        const std::size_t p = pb_.p;
        if (!jacobian_current_) {
            jacobian_(tau, theta, J_.data());
            radius_ = spectral_radius(J_, p, radius_iterations);
            jacobian_current_ = true;
        }
        for (std::size_t q = 0; q < p * p; ++q) G_[q] = -J_[q];
        for (std::size_t q = 0; q < p; ++q) G_[q * p + q] += 1.0 / (h * GAMMA);
        lu_factor(G_, p, piv_);
        // classification runs in tau = log(1 + t), where V carries the factor dt/dtau = e^tau: dV/dtau = V
        const bool log_time = is_classification(pb_.opt.loss);
        for (int s = 0; s < STAGES; ++s) {
            if (s == 0) std::copy(f0, f0 + p, f_.begin());
            else {
                std::copy(theta, theta + p, y_.begin());
                for (int r = 0; r < s; ++r)
                    if (A[s][r] != 0.0)
                        for (std::size_t q = 0; q < p; ++q) y_[q] += A[s][r] * K_[r][q];
                velocity_(tau + ALPHA[s] * h, y_.data(), f_.data());
            }
            std::vector<double>& k = K_[s];
            for (std::size_t q = 0; q < p; ++q) {
                double v = f_[q] + (log_time ? GAMMA_SUM[s] * h * f0[q] : 0.0);
                for (int r = 0; r < s; ++r) v += C[s][r] / h * K_[r][q];
                k[q] = v;
            }
            lu_solve(G_, p, piv_, k.data());
        }
        std::copy(theta, theta + p, y1);
        for (int s = 0; s < STAGES; ++s)
            for (std::size_t q = 0; q < p; ++q) y1[q] += M[s] * K_[s][q];
        double err = 0.0;
        for (std::size_t q = 0; q < p; ++q) {
            double e = 0.0;
            for (int s = 0; s < STAGES; ++s) e += E[s] * K_[s][q];
            const double sc = pb_.opt.atol + pb_.opt.rtol * std::max(std::abs(theta[q]), std::abs(y1[q]));
            err += (e / sc) * (e / sc);
        }
        err = std::sqrt(err / static_cast<double>(p));
        err = std::max(err, balance_excess(pb_.model, theta, y1, pb_.opt.rtol, pb_.opt.atol));
        velocity_(tau + h, y1, f1_.data());
        end_log_loss_ = field_.log_loss();
        // gradient flow never increases the loss (the time factor e^tau of classification does not enter log L)
        if (!(end_log_loss_ <= log_loss0 + 1e-13 * std::max(1.0, std::abs(log_loss0))))
            return std::max(10.0, 2.0 * err);
        return err;
    }

    const double* end_field() const { return f1_.data(); }
    double end_log_loss() const { return end_log_loss_; }

    // whether a step of size h does more than the explicit steps could for its cost: they are held to h |lambda|
    // below their stability bound
    bool pays_off(double h) const {
        return h * radius_ >= dopri5::STABILITY_BOUND * cost_ratio_;
    }

private:
    // An implicit step's cost over an explicit one's, in floating-point operations: five fields, the Jacobian,
    // its LU factors and the spectral radius, against the six new fields of a Dormand-Prince step
    static double cost_ratio(const Problem& pb) {
        const double p = static_cast<double>(pb.p), field = field_flops(pb);
        const double implicit = (rodas4::STAGES - 1.0) * field + FieldJacobian::flops(pb) + 2.0 * p * p * p / 3.0 +
                                2.0 * radius_iterations * p * p;
        return implicit / (6.0 * field);
    }

    const Problem& pb_;
    Velocity& velocity_;
    Field& field_;
    FieldJacobian& jacobian_;
    std::vector<double> J_, G_, f_, y_, f1_;
    std::vector<double> K_[rodas4::STAGES];
    std::vector<std::size_t> piv_;
    bool jacobian_current_ = false;
    double radius_ = 0.0, end_log_loss_ = 0.0;
    double cost_ratio_;
    static constexpr int radius_iterations = 8;
};

}  // namespace fastflow
