// Dense samples at the caller's evaluation times, read off a step's polynomial dense output.
#pragma once
#include <algorithm>
#include <cstddef>
#include <vector>

#include "field.hpp"
#include "rk.hpp"
#include "time_map.hpp"
#include "types.hpp"

namespace fastflow {

// cubic Hermite dense output in the step fraction, from the end values y0, y1 and fields f0, f1 of a step of size
// h, as monomial coefficients (the quartic one 0) like the Runge-Kutta dense output
inline void hermite_coefficients(const double* y0, const double* y1, const double* f0, const double* f1, double h,
                                 std::size_t p, double* coef) {
    for (std::size_t q = 0; q < p; ++q) {
        const double dy = y1[q] - y0[q], a = h * f0[q], b = h * f1[q];
        coef[q] = y0[q];
        coef[p + q] = a;
        coef[2 * p + q] = 3.0 * dy - 2.0 * a - b;
        coef[3 * p + q] = -2.0 * dy + a + b;
        coef[4 * p + q] = 0.0;
    }
}

class DenseSamples {
public:
    DenseSamples(const Problem& pb, Field& field) : pb_(pb), field_(field), y_(pb.p) {}

    void restart() { next_ = 0; }

    // samples for the evaluation times up to tau_b, from the step's dense output (coef of that degree, step) or,
    // with coef = nullptr, at the current state theta
    void emit(Result& res, double tau_b, const double* coef, int degree, const StepMap& step, const double* theta,
              const double* slopes) {
        const std::vector<double>& times = pb_.opt.tau_eval;
        while (next_ < times.size() && times[next_] <= tau_b) {
            const double te = times[next_++];
            if (coef) rk::dense_eval(coef, degree, pb_.p, std::clamp(step.sigma(te), 0.0, 1.0), y_.data());
            else std::copy(theta, theta + pb_.p, y_.begin());
            res.theta_eval.insert(res.theta_eval.end(), y_.begin(), y_.end());
            res.log_loss_eval.push_back(field_.sample_log_loss(te, y_.data(), slopes));
        }
    }

private:
    const Problem& pb_;
    Field& field_;
    std::vector<double> y_;
    std::size_t next_ = 0;
};

}  // namespace fastflow
