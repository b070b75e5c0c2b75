// When a run stops, and with which status (the checks made before every step and after every event). A run that
// reaches its horizon is t_max whatever its loss: only the stall rules of before_step say stalled.
#pragma once
#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>

#include "linalg.hpp"
#include "loss.hpp"
#include "time_map.hpp"
#include "types.hpp"

namespace fastflow {

struct Stop {
    Status status;
    const char* message;
};

class StopRules {
public:
    static constexpr double stall_rate = 1e-10;
    static constexpr double stall_wait = 1e3;            // in units of the starting time scale
    static constexpr double late_overflow_tau = 600.0;   // e^tau alone near the float64 limit
    static constexpr std::size_t zeno_rounds = 1000;     // events at one time before the run gives up

    // theta_norm, fnorm: of the starting state
    StopRules(const Options& opt, double theta_norm, double fnorm)
        : opt_(opt), log_t_stall_from_(std::log(theta_norm) - std::log(fnorm) + std::log(stall_wait)) {}

    // before a step at tau from theta (norm theta_norm; its field's norm fnorm, log L there)
    std::optional<Stop> before_step(bool interrupted, double tau, std::size_t n_steps, double fnorm, double theta_norm,
                                    double log_loss) const {
        if (interrupted) return Stop{Status::interrupted, "interrupted"};
        if (tau >= opt_.tau_max) return Stop{Status::t_max, "reached t_max"};
        if (n_steps >= opt_.max_steps) return Stop{Status::max_steps, "max_steps reached"};
        const bool classification = is_classification(opt_.loss);
        if (!std::isfinite(fnorm)) {
            // a classification loss stuck above l(0) decays no weight e^{tau - q}: late enough, time itself
            // overflows; earlier, the data or weights are too large for float64 weights
            if (classification && tau >= late_overflow_tau && log_loss >= log_ell(opt_.loss, 0.0))
                return Stop{Status::stalled,
                            "the loss never fell below l(0): stuck (e.g. at a saddle or on non-separable data)"};
            return Stop{Status::error, "the vector field overflows float64: rescale the data or the initialisation"};
        }
        // A classification run stuck above l(0) whose loss and parameters both change by less than stall_rate
        // of themselves per unit of log t (dL/dlog t = t |grad L|^2, |d theta/dlog t| = t |grad L|) is stalled:
        // in tau the field near such a point is stiff like e^tau, so waiting for t_max would cost steps growing
        // like t. (The relative motion keeps a small initialisation, whose loss barely moves, from stalling;
        // the rule waits for t >> the run's own starting time scale |theta0| / |grad L(theta0)|.)
        if (classification && log_t(tau) >= log_t_stall_from_ &&
            2.0 * std::log(fnorm) - tau <= std::log(stall_rate) + log_loss &&
            std::log(fnorm) - tau <= std::log(stall_rate * theta_norm) &&
            log_loss >= log_ell(opt_.loss, 0.0))
            return Stop{Status::stalled, "the loss never fell below l(0) and the gradient vanished: stuck"};
        const double log_grad = std::log(fnorm) - log_time_factor(opt_.loss, tau);
        // Every loss weight e^tau (-l'(q)) <= e^tau L below float64 (all margins beyond ~745 at tau = 0, e.g. a
        // late point of another run): F = 0 there is no stationary point. The flow crawls at e^(tau - q) until tau
        // nears q; the steps go on (F = 0 lets them grow) instead of stopping.
        const bool weights_underflow =
            classification && tau + log_loss < std::log(std::numeric_limits<double>::min());
        if ((fnorm == 0.0 && !weights_underflow) || (opt_.gtol > 0.0 && log_grad <= std::log(opt_.gtol)))
            return Stop{Status::converged, "the (sub)gradient vanished: a stationary point"};
        return std::nullopt;
    }

    // after the events at tau, with n_events logged so far
    std::optional<Stop> after_events(double tau, std::size_t n_events) {
        if (n_events > opt_.max_events) return Stop{Status::max_events, "max_events reached"};
        if (tau - last_progress_tau_ > 1e-12 * std::abs(tau)) {
            last_progress_tau_ = tau, stuck_rounds_ = 0;
        } else if (++stuck_rounds_ > zeno_rounds) {
            return Stop{Status::max_events, "Zeno: events accumulate at one time"};
        }
        return std::nullopt;
    }

private:
    const Options& opt_;
    double log_t_stall_from_;
    double last_progress_tau_ = 0.0;
    std::size_t stuck_rounds_ = 0;
};

}  // namespace fastflow
