// What a run is given (Problem, Options) and what it returns (Result, Event, Status).
#pragma once
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "loss.hpp"
#include "model.hpp"

namespace fastflow {

// Adding a kind: append it here and to its name list below; Python reads the names from the module.
enum class Status : int { converged, t_max, max_steps, max_events, stalled, interrupted, error };
enum class EventKind : int { activate, deactivate, slide_start, slide_end, branch };
inline constexpr const char* status_names[] = {"converged", "t_max",       "max_steps", "max_events",
                                               "stalled",   "interrupted", "error"};
inline constexpr const char* event_kind_names[] = {"activate", "deactivate", "slide_start", "slide_end", "branch"};

// A switch is one (sample, hidden unit) pair; its mode is the side of its surface it is on, or on it.
enum class Mode : std::uint8_t { inactive = 0, active = 1, sliding = 2, unset = 3 };
inline constexpr const char* mode_names[] = {"inactive", "active", "sliding", "unset"};

struct Event {
    double tau;
    EventKind kind;
    std::size_t sample;
    int layer;
    std::size_t neuron;
};

struct Options {
    Loss loss = Loss::exponential;
    double tau_max = 1.0;
    double rtol = 1e-10;
    double atol = 1e-12;
    std::size_t max_steps = 10'000'000;
    std::size_t max_events = 100'000;
    double gtol = 0.0;              // stop ("converged") once ||grad L|| <= gtol
    bool settle = false;            // stop ("converged") once the field is within its own noise (a finite limit)
    bool leave_branches = false;    // at unstable branches (branches.hpp) leave as gradient descent does, not stay
    std::vector<double> tau_eval;   // sorted; dense samples
};

struct Result {
    Status status = Status::error;
    std::string message;
    double tau = 0.0;
    std::vector<double> theta;
    double log_loss = 0.0;
    double log_grad_norm = 0.0;     // log ||grad L|| in the original time t
    std::size_t n_steps = 0, n_rejected = 0, n_rhs = 0;
    std::vector<Event> events;
    std::vector<Mode> modes;        // every switch's final mode, sample-major (n x hidden units)
    std::vector<double> theta_eval, log_loss_eval;
    double balance_drift = std::numeric_limits<double>::quiet_NaN();  // see balance_drift (model.hpp)
};

// Where a run is, passed to its should_stop callback before every step (for progress reports).
struct Progress {
    double tau;
    std::size_t n_steps, n_events;
    double log_loss;
};

// The network, its data and the options of a run; read-only while it runs.
struct Problem {
    // X: n x d_in; Y: n labels (+-1) for classification, n x d_out targets for the square loss
    Problem(const Model& model_, const double* X_, const double* Y_, std::size_t n_, Options opt_)
        : model(model_), X(X_), Y(Y_), n(n_), p(model_.n_params()), H(model_.n_hidden()), NS(n_ * H),
          c(model_.d_out()), opt(std::move(opt_)) {}
    const Model& model;
    const double* X;
    const double* Y;
    std::size_t n, p, H, NS, c;  // samples, parameters, hidden units, switches (n H), outputs
    Options opt;
};

}  // namespace fastflow
