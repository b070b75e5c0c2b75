// Time: classification losses run in tau = log(1 + t) (dt/dtau = e^tau folded into the log-space sample weights),
// so horizons of t = 1e30 and log t = 1e8 cost steps in log t; the square loss runs in tau = t. The stiff phase
// steps in u = log tau.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>

#include "loss.hpp"

namespace fastflow {

// log t of tau = log(1 + t) without overflow
inline double log_t(double tau) { return tau > 40.0 ? tau : std::log(std::expm1(tau)); }

// log(dt/dtau)
inline double log_time_factor(Loss loss, double tau) { return is_classification(loss) ? tau : 0.0; }

// equal to rounding (an event at the start of a step may land an ulp or two from where the last one was)
inline bool same_time(double a, double b) {
    return std::abs(a - b) <= 64.0 * std::numeric_limits<double>::epsilon() * std::abs(b);
}

// A step maps its fraction sigma in [0,1] to tau linearly, or in the stiff phase linearly in log tau.
struct StepMap {
    double tau0 = 0.0, h = 0.0;
    bool log_tau = false;

    double origin() const { return log_tau ? std::log(tau0) : tau0; }
    double tau(double sigma) const {
        // exp(log(tau0)) may round below tau0: an event at the very start must not move time back
        return log_tau ? std::max(tau0, std::exp(std::log(tau0) + sigma * h)) : tau0 + sigma * h;
    }
    double sigma(double t) const { return log_tau ? (std::log(t) - std::log(tau0)) / h : (t - tau0) / h; }
};

}  // namespace fastflow
