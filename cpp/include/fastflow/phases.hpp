// Which method takes the next step (docs/mathematics.md §4). Explicit Dormand-Prince steps (DOP853 or DOPRI5) while
// the flow is not stiff. Once it is:
// - margins that grow without bound (classification of data the net separates: they relax at rate O(1) while the
//   direction moves like 1/tau) continue in u = log tau (StiffStepper);
// - a flow that settles at a finite point (the square loss, data the net does not separate) continues with
//   Rosenbrock steps in tau (RosenbrockStepper).
// Either returns to explicit steps once its steps no longer do more than explicit ones could for their cost (the
// u = log tau phase only before t ~ 1e13).
#pragma once
#include <algorithm>
#include <cstddef>

#include "loss.hpp"
#include "step_control.hpp"

namespace fastflow {

enum class Phase { explicit_steps, log_time, implicit };

// Which pair takes the explicit steps: DOPRI5 (6 fields a step) or DOP853 (12, and 3 more for its dense output),
// whose steps are several times longer where the tolerance sets their length, and no longer where events or
// stability cut them. DOPRI5 runs while any of its steps are cut so, and takes over at the first DOP853 step held
// near DOP853's own bound (there its degree-7 dense output strays from the decaying modes by far more than the
// tolerance: the loss rose between samples of settling square-loss flows). Where no step is cut, each pair is tried
// for a few steps in turn, and the one that advanced the flow further per field evaluation (rejected steps and
// event handling included) takes the steps until the next look, which comes later each time the same one wins.
class OrderChoice {
public:
    static constexpr std::size_t trial_steps = 8;
    static constexpr std::size_t unmeasured = 2;  // of a trial's first steps: the step size settling after a switch
    static constexpr std::size_t first_look = 8, first_run = 48, longest_run = 1536;
    static constexpr double high_margin = 1.25;  // DOP853's steps cost more than their fields: polynomials of degree 7

    // possible: DOP853's dense output of degree 7 keeps the switches' polynomials within reach (linear switches)
    void reset(bool possible) {
        possible_ = possible;
        stage_ = Stage::run, high_ = false, last_high_won_ = false;
        steps_ = 0, run_length_ = first_look;
        forget();
    }

    bool high_order() const { return high_; }

    // after an accepted explicit step: the time it advanced, the fields evaluated since the step before, whether
    // an event cut it, and its h |lambda| over the stability bound
    void accepted(double advanced, std::size_t fields, bool cut_by_event, double stability_share) {
        if (!possible_) return;
        if (high_ && stability_share > 0.5) {
            steps_ = 0;
            return decided(false);
        }
        if (stage_ != Stage::run && steps_ >= unmeasured) advanced_[high_] += advanced, fields_[high_] += fields;
        if (!high_) cut_ += cut_by_event || stability_share > 0.5;
        if (++steps_ < (stage_ == Stage::run ? run_length_ : trial_steps)) return;
        steps_ = 0;
        if (!high_ && cut_ > 0) {
            decided(false);  // DOPRI5's steps were cut: DOP853's could not be longer
        } else if (stage_ == Stage::run) {
            stage_ = Stage::try_low, high_ = false;
            forget();
        } else if (stage_ == Stage::try_low) {
            stage_ = Stage::try_high, high_ = true;
        } else {
            decided(advanced_[1] * static_cast<double>(fields_[0]) >
                    high_margin * advanced_[0] * static_cast<double>(fields_[1]));
        }
    }

private:
    enum class Stage { run, try_low, try_high };

    void decided(bool high_won) {
        run_length_ = high_won == last_high_won_ ? std::min(2 * run_length_, longest_run) : first_run;
        last_high_won_ = high_won;
        stage_ = Stage::run, high_ = high_won;
        forget();
    }
    void forget() { advanced_[0] = advanced_[1] = 0.0, fields_[0] = fields_[1] = 0, cut_ = 0; }

    bool possible_ = false;
    Stage stage_ = Stage::run;
    bool high_ = false, last_high_won_ = false;
    std::size_t steps_ = 0, run_length_ = first_run;
    double advanced_[2] = {0.0, 0.0};  // per pair (DOPRI5, DOP853) in the current trials
    std::size_t fields_[2] = {0, 0};
    std::size_t cut_ = 0;  // DOPRI5's steps since the last decision that an event or stability cut
};

class PhasePolicy {
public:
    static constexpr std::size_t calm_needed = 6;  // implicit steps in a row that do not pay off end the phase
    static constexpr std::size_t first_stiff_tests = 15, max_stiff_tests = 15 << 10;
    static constexpr double log_phase_from_tau = 30.0;  // t ~ 1e13: late in any classification run

    // high_order_possible: see OrderChoice::reset
    PhasePolicy(Loss loss, bool log_phase_possible, bool high_order_possible)
        : loss_(loss), log_phase_possible_(log_phase_possible), high_order_possible_(high_order_possible) {}

    void reset() {
        phase_ = Phase::explicit_steps;
        stiff_tests_needed_ = first_stiff_tests;
        stiffness_.reset(stiff_tests_needed_);
        stiff_ahead_ = false;
        calm_steps_ = 0;
        left_log_time_ = false;
        order_.reset(high_order_possible_);
    }

    Phase phase() const { return phase_; }

    // after an accepted explicit step (its last two stages k6, k7 at y6, y7; the method's stability bound)
    void explicit_step(double h, const double* k6, const double* k7, const double* y6, const double* y7,
                       std::size_t p, double stability_bound) {
        stiff_ahead_ = stiffness_.stiff_after(h, k6, k7, y6, y7, p, stability_bound);
    }
    // ... the time it advanced (to the event, if one cut it short) and the fields evaluated since the step before
    void explicit_ended(double advanced, std::size_t fields, bool cut_by_event) {
        order_.accepted(advanced, fields, cut_by_event, stiffness_.stability_share());
    }
    // the explicit steps' pair is DOP853
    bool high_order() const { return order_.high_order(); }
    // after an accepted step of either implicit phase: whether it did more than explicit steps could for its cost
    void implicit_step(bool paid_off) { calm_steps_ = paid_off ? 0 : calm_steps_ + 1; }

    // before a step at tau from a state with log L = log_loss, after `steps` accepted ones; h: the step to come
    // (moved between tau and u = log tau with the phase). implicit_possible: the problem is small enough for
    // dense Jacobians.
    void choose(double tau, double& h, double log_loss, std::size_t steps, bool implicit_possible) {
        const bool separated = is_classification(loss_) && log_loss < log_ell(loss_, 0.0);
        if (phase_ == Phase::implicit && (separated || calm_steps_ >= calm_needed || !implicit_possible))
            leave();
        // the u = log tau phase ends the same way while it is early: its clock then served steps cut by stiffness,
        // not t of order 1e13
        if (phase_ == Phase::log_time && calm_steps_ >= calm_needed && tau < log_phase_from_tau) {
            leave();
            left_log_time_ = true;
            h *= tau;
        }
        if (phase_ != Phase::explicit_steps) return;
        // growing margins: late in the run, or once explicit steps in tau are cut far below tau itself (e.g. two
        // samples that no network can separate held at margin 0 while others keep growing); the same once implicit
        // steps in tau have not paid off. After a u = log tau stint that did not, the cut steps must be stiff too.
        const bool growing = separated || !implicit_possible || stiff_tests_needed_ > first_stiff_tests;
        const bool cut = growing && steps >= 100 && h < 1e-3 * tau && (!left_log_time_ || stiff_ahead_);
        if (is_classification(loss_) && log_phase_possible_ && (tau >= log_phase_from_tau || cut)) {
            phase_ = Phase::log_time;
            calm_steps_ = 0;
            h = std::min(h / tau, 0.1);
        } else if (stiff_ahead_ && implicit_possible) {
            phase_ = Phase::implicit;
            calm_steps_ = 0;
        }
    }

private:
    // back to explicit steps; a stint that did not pay off asks for more evidence before the next (the flow may
    // hover at the bound)
    void leave() {
        if (calm_steps_ >= calm_needed) stiff_tests_needed_ = std::min(2 * stiff_tests_needed_, max_stiff_tests);
        phase_ = Phase::explicit_steps;
        stiffness_.reset(stiff_tests_needed_), stiff_ahead_ = false;
    }

    Loss loss_;
    bool log_phase_possible_;
    Phase phase_ = Phase::explicit_steps;
    step_control::StiffnessTest stiffness_;
    bool stiff_ahead_ = false;  // the explicit steps' stiffness test has fired
    std::size_t calm_steps_ = 0;
    bool left_log_time_ = false;  // a u = log tau stint has ended for not paying off
    bool high_order_possible_;
    OrderChoice order_;
    std::size_t stiff_tests_needed_ = first_stiff_tests;  // the stiffness test's evidence before implicit steps
};

}  // namespace fastflow
