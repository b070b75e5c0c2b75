// Step-size control of an embedded Runge-Kutta pair (Hairer, Norsett & Wanner II.4), the exponent taken from the
// tableau's error order.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "rk.hpp"

namespace fastflow::step_control {

constexpr double SAFETY = 0.9;
constexpr double MIN_FACTOR = 0.2;
constexpr double MAX_FACTOR = 10.0;
constexpr double EXPONENT = -1.0 / (dopri5::ERROR_ORDER + 1);

// the factor for the retry of a rejected step (err > 1, or not finite); exponent: -1 / (the error order + 1)
inline double after_rejection(double err, double exponent = EXPONENT) {
    return std::isfinite(err) ? std::max(MIN_FACTOR, SAFETY * std::pow(err, exponent)) : MIN_FACTOR;
}

// the factor for the step after an accepted one; no growth right after a rejection (Hairer & Wanner's DOPRI5): it
// would only be rejected again
inline double after_acceptance(double err, bool just_rejected, double exponent = EXPONENT) {
    if (just_rejected) return std::min(1.0, SAFETY * std::pow(err, exponent));
    if (err == 0.0) return MAX_FACTOR;
    return std::min(MAX_FACTOR, std::max(MIN_FACTOR, SAFETY * std::pow(err, exponent)));
}

// root mean square of (v - minus) / (atol + rtol |y|), without overflow when the ratios pass 1e154
inline double scaled_rms(const double* v, const double* minus, const double* y, std::size_t p, double rtol,
                         double atol) {
    auto ratio = [&](std::size_t q) { return (v[q] - (minus ? minus[q] : 0.0)) / (atol + rtol * std::abs(y[q])); };
    double big = 0.0;
    for (std::size_t q = 0; q < p; ++q) big = std::max(big, std::abs(ratio(q)));
    if (big == 0.0 || !std::isfinite(big)) return big;
    double sum = 0.0;
    for (std::size_t q = 0; q < p; ++q) sum += (ratio(q) / big) * (ratio(q) / big);
    return big * std::sqrt(sum / static_cast<double>(p));
}

// Hairer, Norsett & Wanner's starting step from y (f0 = f(t, y)), guarded against overflow; `trial` and `f1` are
// workspace of length p. log_time: the flow runs in tau = log(1 + t), where a trial step of more than a few units
// multiplies every weight by e^h0 and may overflow.
template <class Field>
double initial_step(Field&& f, double t, const double* y, const double* f0, double* trial, double* f1, std::size_t p,
                    double rtol, double atol, bool log_time) {
    const double d0 = scaled_rms(y, nullptr, y, p, rtol, atol), d1 = scaled_rms(f0, nullptr, y, p, rtol, atol);
    double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
    if (log_time) h0 = std::min(h0, 1.0);
    double d2 = INFINITY;
    for (int attempt = 0; attempt < 64; ++attempt, h0 *= 0.01) {
        for (std::size_t q = 0; q < p; ++q) trial[q] = y[q] + h0 * f0[q];
        f(t + h0, trial, f1);
        d2 = scaled_rms(f1, f0, y, p, rtol, atol) / h0;
        if (std::isfinite(d2)) break;
    }
    const double dm = std::max(d1, d2);
    const double h1 = dm <= 1e-15 ? std::max(1e-6, h0 * 1e-3) : std::pow(0.01 / dm, 1.0 / dopri5::ORDER);
    return std::min(100 * h0, h1);
}

// y <- th moved by its error tolerance atol + rtol |th| along fixed sign pattern number `pattern` (>= 1): a state
// error of the size the step control lets through, to measure what it does to a quantity read off the state. A
// parameter exactly 0 stays: zeros come from the draw and stay while the flow holds them (no step moves them), and
// moved by atol a weight held at 0 takes the hull of a deep net's dead path from both sides of a unit to one.
inline void perturb_by_tolerance(const double* th, std::size_t p, double rtol, double atol, std::uint64_t pattern,
                                 double* y) {
    for (std::size_t q = 0; q < p; ++q) {
        const double tol = th[q] == 0.0 ? 0.0 : atol + rtol * std::abs(th[q]);
        const bool flip = ((q + 1) * 0x9E3779B97F4A7C15ULL * pattern) >> 63;
        y[q] = th[q] + (flip ? -tol : tol);
    }
}

// Hairer's stiffness test of DOPRI5 and DOP853: the last two stages of either are at the same time, so h |lambda|
// of the field's stiffest direction is about h |k7 - k6| / |y7 - y6|. Explicit steps cut by stability hold it near
// the boundary of the stability region (`bound`: 3.25 for DOPRI5, 6.1 for DOP853): stiff once it is there
// `required` times (Hairer: 15) without 6 calm steps in a row.
class StiffnessTest {
public:
    void reset(std::size_t required) { near_bound_ = 0, calm_ = 0, required_ = required; }
    // the last step's h |lambda| over the bound: near 1 where stability, not the tolerance, sets the step
    double stability_share() const { return stability_share_; }

    bool stiff_after(double h, const double* k6, const double* k7, const double* y6, const double* y7, std::size_t p,
                     double bound) {
        double num = 0.0, den = 0.0;
        for (std::size_t q = 0; q < p; ++q) {
            num += (k7[q] - k6[q]) * (k7[q] - k6[q]);
            den += (y7[q] - y6[q]) * (y7[q] - y6[q]);
        }
        stability_share_ = den > 0.0 ? h * std::sqrt(num / den) / bound : 0.0;
        if (stability_share_ > 1.0) {
            calm_ = 0;
            return ++near_bound_ >= required_;
        }
        if (++calm_ == 6) near_bound_ = 0;
        return false;
    }

private:
    std::size_t near_bound_ = 0, calm_ = 0, required_ = 15;
    double stability_share_ = 0.0;
};

}  // namespace fastflow::step_control
