// The event-driven integrator of the Clarke subgradient flow d theta/dt = -m(theta) (docs/mathematics.md §2-§5): the
// loop that wires the rooms together. Stop? -> attempt a step -> control its size -> locate the first event in it
// -> handle the event (classify the switches) -> advance.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstddef>
#include <functional>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "classify.hpp"
#include "dense.hpp"
#include "dop853.hpp"
#include "event_log.hpp"
#include "field.hpp"
#include "field_jacobian.hpp"
#include "geometry.hpp"
#include "linalg.hpp"
#include "locate.hpp"
#include "phases.hpp"
#include "rk.hpp"
#include "roots.hpp"
#include "rosenbrock.hpp"
#include "sliding.hpp"
#include "step_control.hpp"
#include "stiff.hpp"
#include "stop_rules.hpp"
#include "switch_state.hpp"
#include "time_map.hpp"
#include "types.hpp"
#include "velocity.hpp"

namespace fastflow {

// Switches gathered at one tau: at() a new tau starts an empty set
struct SwitchesAtTau {
    double tau = -1.0;
    std::vector<std::size_t> switches;

    void clear() { tau = -1.0, switches.clear(); }
    void at(double t) {
        if (!same_time(tau, t)) switches.clear();
        tau = t;
    }
    bool holds(double t, std::size_t sw) const {
        return same_time(tau, t) && std::find(switches.begin(), switches.end(), sw) != switches.end();
    }
    void add(double t, std::size_t sw) {
        if (!holds(t, sw)) at(t), switches.push_back(sw);
    }
};

class Integrator {
public:
    // X: n x d_in; Y: n labels (+-1) for classification, n x d_out targets for the square loss
    Integrator(const Model& model, const double* X, const double* Y, std::size_t n, Options opts)
        : pb_(model, X, Y, n, std::move(opts)), field_(pb_), geometry_(pb_, field_.scratch()),
          sliding_(pb_, field_, geometry_), velocity_(field_, sliding_, state_), log_(pb_),
          classifier_(pb_, state_, geometry_, sliding_, velocity_, log_), branches_(pb_, state_),
          locator_(pb_, state_, geometry_, sliding_, velocity_, branches_, field_.scratch()),
          jacobian_(pb_, field_, geometry_, state_, sliding_, velocity_),
          stiff_(pb_, field_, velocity_, geometry_, state_, jacobian_),
          rosenbrock_(pb_, velocity_, field_, jacobian_),
          phases_(pb_.opt.loss, pb_.p <= StiffStepper::max_params, model.linear_switches()),
          samples_(pb_, field_), theta_(pb_.p), y1_(pb_.p),
          ytmp_(pb_.p), coef_((rk::max_dense_degree + 1) * pb_.p) {
        if (!model.linear_switches() && model.switch_poly_degree(dopri5::DENSE_DEGREE) > max_poly_degree)
            throw std::invalid_argument("networks deeper than " +
                                        std::to_string(max_poly_degree / dopri5::DENSE_DEGREE + 1) +
                                        " layers are not supported (pre-activation polynomials of too high degree)");
        for (auto& k : k_) k.resize(pb_.p);
    }

    // What the constructor and a run allocate, in bytes (as a double: checked before allocating, so that a huge
    // n x width fails with a clear error instead of an allocation failure or the OOM killer half-way)
    static double bytes_needed(const Model& model, std::size_t n, std::size_t n_eval) {
        auto real = [](std::size_t v) { return static_cast<double>(v); };
        const double p = real(model.n_params()), ns = real(n) * real(model.n_hidden());
        const double per_switch = rk::max_dense_degree + 11.0 +
            (model.linear_switches() ? 0.0 : real(model.switch_poly_degree(dopri5::DENSE_DEGREE)) + 1.0);
        const double columns = real(StiffStepper::columns);
        const double stiff = (p <= real(StiffStepper::max_params) ? 3.0 * p * p + columns * columns * p : 0.0) +
                             (p <= real(RosenbrockStepper::max_params) ? 2.0 * p * p + 8.0 * p : 0.0);
        const double doubles = (6.0 + dop853::DENSE_STAGES + rk::max_dense_degree) * p +
                               3.0 * real(n) * real(model.d_out()) + real(model.scratch_size()) + per_switch * ns +
                               stiff + real(n_eval) * (p + 1.0);
        return 8.0 * doubles + ns;
    }

    Result run(const double* theta0, const std::function<bool(const Progress&)>& should_stop = {}) {
        const std::size_t p = pb_.p;
        const Options& opt = pb_.opt;
        const bool classification = is_classification(opt.loss);
        Result res;
        std::copy(theta0, theta0 + p, theta_.begin());
        double tau = 0.0;
        state_.reset(pb_.NS);
        log_.clear();
        field_.reset_count();
        evaluations_seen_ = 0;
        samples_.restart();
        locator_.forget_start_scales();
        sliding_.hull().forget();
        branches_.reset();
        phases_.reset();
        next_settle_check_ = INFINITY;
        hovering_ = 0;
        exits_.clear(), released_.clear();
        initial_modes();
        touched_.assign(pb_.H, true);
        if (opt.leave_branches) mark_branches(tau, {});  // a unit may start pinned
        double log_loss = state_field(tau);  // log L at theta_, as k_[0] is its field
        samples_.emit(res, tau, nullptr, 0, step_, theta_.data(), slopes());
        double h = step_control::initial_step(velocity_, tau, theta_.data(), k_[0].data(), y1_.data(), ytmp_.data(),
                                              p, opt.rtol, opt.atol, classification);
        StopRules stop(opt, norm2(theta_.data(), p), norm2(k_[0].data(), p));
        bool just_rejected = false;
        stiff_.new_state();
        rosenbrock_.new_state();
        while (true) {
            // should_stop is rate-limited by the caller (Poll: 50 ms)
            const bool stop_asked = should_stop && should_stop(Progress{tau, res.n_steps, log_.size(), log_loss});
            if (auto s = stop.before_step(stop_asked, tau, res.n_steps, norm2(k_[0].data(), p),
                                          norm2(theta_.data(), p), log_loss)) {
                res.status = s->status, res.message = s->message;
                break;
            }
            // A classification flow settles only off the sliding set and while L >= l(0): separated, its margins
            // grow without bound; and a slide's multipliers are noise where some margins still grow (a point with
            // both labels pinned at f = 0 while another sample's margin grows).
            const bool may_settle = !classification || (state_.Z.empty() && log_loss >= log_ell(opt.loss, 0.0));
            if (opt.settle && may_settle && settled(tau)) {
                res.status = Status::converged;
                res.message = "the (sub)gradient is within its own noise at the tolerance: a stationary point";
                break;
            }
            phases_.choose(tau, h, log_loss, res.n_steps, rosenbrock_.available());
            const Phase phase = phases_.phase();
            const bool log_phase = phase == Phase::log_time;
            // DOP853 off the sliding set only: on it the field is the box problem's solution, whose active set may
            // change within a step, and slide exits are proven against DOPRI5's errors at the tolerance
            const bool free_explicit = phase == Phase::explicit_steps && state_.Z.empty();
            high_order_ = free_explicit && phases_.high_order();
            const double span = log_phase ? std::log(opt.tau_max) - std::log(tau) : opt.tau_max - tau;
            const bool last = h >= span;
            h = std::min(h, span);
            step_ = {tau, h, log_phase};
            const double origin = step_.origin();
            if (h < 10.0 * (std::nextafter(origin, INFINITY) - origin)) {
                res.status = Status::error, res.message = "step size fell below the resolution of t";
                break;
            }
            velocity_.watch_exits();
            auto stage = [this](double t, const double* y, double* F) { stage_velocity(t, y, F); };
            const double* y0 = theta_.data();
            const double err =
                log_phase ? stiff_.attempt(tau, h, y0, log_loss, y1_.data())
                : phase == Phase::implicit ? rosenbrock_.attempt(tau, h, y0, k_[0].data(), log_loss, y1_.data())
                : high_order_ ? dop853::step(stage, tau, h, y0, k_, y1_.data(), ytmp_.data(), p, opt.rtol, opt.atol)
                              : dopri5::step(stage, tau, h, y0, k_, y1_.data(), ytmp_.data(), p, opt.rtol, opt.atol);
            const std::vector<double> exit_taus = velocity_.exit_taus();
            if (!(err <= 1.0)) {
                ++res.n_rejected;
                h *= step_control::after_rejection(err, exponent());
                just_rejected = true;
                continue;
            }
            ++res.n_steps;
            if (phase == Phase::explicit_steps)
                phases_.explicit_step(h, k_[end_field() - 1].data(), k_[end_field()].data(), ytmp_.data(), y1_.data(),
                                      p, high_order_ ? dop853::STABILITY_BOUND : dopri5::STABILITY_BOUND);
            else
                phases_.implicit_step(log_phase ? stiff_.pays_off(h) : rosenbrock_.pays_off(h));
            const double log_loss_end = dense_output(tau, h);
            std::vector<std::size_t> fired;
            // where the stages found slides out of their bounds: the exits are looked for there only
            std::vector<double> exit_hints;
            for (double t : exit_taus) exit_hints.push_back(step_.sigma(t));
            const double sigma_event = locator_.find(theta_.data(), y1_.data(), coef_.data(), dense_degree(), step_,
                                                     fired, exit_hints);
            const std::size_t evaluations = field_.evaluations();
            if (free_explicit)
                phases_.explicit_ended(sigma_event >= 0.0 ? sigma_event * h : h, evaluations - evaluations_seen_,
                                       sigma_event >= 0.0);
            evaluations_seen_ = evaluations;
            stiff_.new_state();
            rosenbrock_.new_state();
            const double h_next = h * step_control::after_acceptance(err, just_rejected, exponent());
            just_rejected = false;
            if (sigma_event >= 0.0) {
                const double tau_event = step_.tau(sigma_event);
                samples_.emit(res, tau_event, coef_.data(), dense_degree(), step_, theta_.data(), slopes());
                rk::dense_eval(coef_.data(), dense_degree(), p, sigma_event, theta_.data());
                tau = tau_event;
                touched_.assign(pb_.H, false);
                if (fired.empty() && locator_.slide_exits().empty())
                    geometry_.project(theta_.data(), slopes(), state_.Z);  // a surface turn alone: the modes stay
                else
                    handle_events(tau, fired, exits_at(tau));
                mark_branches(tau, locator_.surface_turns());
                log_loss = state_field(tau);
                if (auto s = stop.after_events(tau, log_.size())) {
                    res.status = s->status, res.message = s->message;
                    break;
                }
            } else {
                const double tau_new = last ? opt.tau_max : step_.tau(1.0);
                samples_.emit(res, tau_new, coef_.data(), dense_degree(), step_, theta_.data(), slopes());
                std::swap(theta_, y1_);
                tau = tau_new;
                if (!state_.Z.empty() && !geometry_.on_surfaces(theta_.data(), state_.Z)) {
                    // the step's rounding leaves sliding neurons off their surfaces. (Two-layer nets: each stage's
                    // velocity is tangent to the linear surfaces, so the step keeps them but for rounding.)
                    geometry_.project(theta_.data(), slopes(), state_.Z);
                    log_loss = state_field(tau);
                } else {
                    // the step's end is the next step's start, slopes unchanged: its field and switch scales too
                    std::swap(k_[0], k_[end_field()]);
                    log_loss = log_loss_end;
                    locator_.carry_end_scales();
                }
            }
            h = h_next;
        }
        // evaluation times at the end of the run up to the rounding of t -> tau (a run may stop at an event whose t
        // is then asked for) get the final state, and so do all later ones after a converged end (the flow stays at
        // its stationary point); after any other early end they are left NaN
        const double held = res.status == Status::converged ? INFINITY
                                                            : tau + 4.0 * (std::nextafter(tau, INFINITY) - tau);
        samples_.emit(res, held, nullptr, 0, step_, theta_.data(), slopes());
        res.theta_eval.resize(opt.tau_eval.size() * p, std::numeric_limits<double>::quiet_NaN());
        res.log_loss_eval.resize(opt.tau_eval.size(), std::numeric_limits<double>::quiet_NaN());
        res.log_loss = state_field(tau);
        res.tau = tau;
        res.theta = theta_;
        res.log_grad_norm = std::log(norm2(k_[0].data(), p)) - log_time_factor(opt.loss, tau);
        res.balance_drift = balance_drift(pb_.model, theta0, theta_.data());
        res.events = log_.events();
        res.modes = state_.mode;
        res.n_rhs = field_.evaluations();
        return res;
    }

    // The velocity V at (tau, theta) with the given modes (n x n_hidden), as a step's stages evaluate it: open to
    // tests of the sliding solutions and to benchmarks of their cost
    void velocity(double tau, const double* theta, const std::vector<Mode>& modes, double* V) {
        state_.reset(pb_.NS);
        for (std::size_t k = 0; k < pb_.NS; ++k) {
            state_.mode[k] = modes[k];
            state_.slopes[k] = modes[k] == Mode::active ? 1.0 : 0.0;
            if (modes[k] == Mode::sliding) state_.Z.push_back(k);
        }
        velocity_(tau, theta, V);
    }

    // ... and its Jacobian J (p x p): what the implicit steps use, open to a test against differences of V
    void velocity_jacobian(double tau, const double* theta, const std::vector<Mode>& modes, double* V, double* J) {
        velocity(tau, theta, modes, V);
        jacobian_(tau, theta, J);
    }

private:
    const double* slopes() const { return state_.slopes.data(); }

    // k_[0] <- the velocity at the state (tau, theta_); returns log L there
    double state_field(double tau) {
        velocity_(tau, theta_.data(), k_[0].data());
        return field_.log_loss();
    }

    // where the step's field at its end is (DOP853's first-same-as-last stage, else DOPRI5's)
    std::size_t end_field() const { return high_order_ ? dop853::FSAL : dopri5::FSAL; }
    // of the step's dense output (the stiff phases' Hermite cubics fill DOPRI5's degree)
    int dense_degree() const { return high_order_ ? dop853::DENSE_DEGREE : dopri5::DENSE_DEGREE; }

    // the velocity at a stage of a step: only the step's end may be evaluated again, so no other state is kept
    void stage_velocity(double t, const double* y, double* F) {
        if (y != y1_.data()) field_.forget_next();
        velocity_(t, y, F);
    }

    // the accepted step's polynomial dense output in coef_, of degree dense_degree() (in the stiff phases also its
    // end field in k_[end_field()]); returns log L at its end, y1_
    double dense_output(double tau, double h) {
        if (phases_.phase() == Phase::log_time) {
            stiff_.hermite(theta_.data(), y1_.data(), h, coef_.data());
            velocity_(step_.tau(1.0), y1_.data(), k_[end_field()].data());
            return field_.log_loss();
        }
        if (phases_.phase() == Phase::implicit) {
            hermite_coefficients(theta_.data(), y1_.data(), k_[0].data(), rosenbrock_.end_field(), h, pb_.p,
                                 coef_.data());
            std::copy(rosenbrock_.end_field(), rosenbrock_.end_field() + pb_.p, k_[end_field()].begin());
            return rosenbrock_.end_log_loss();
        }
        if (high_order_) {
            const double log_loss_end = field_.log_loss();  // of the step's last stage, before the dense output's
            auto stage = [this](double t, const double* y, double* F) { stage_velocity(t, y, F); };
            dop853::dense_output(stage, tau, h, theta_.data(), y1_.data(), k_, ytmp_.data(), pb_.p, coef_.data());
            return log_loss_end;
        }
        const double* kp[dopri5::STAGES];
        for (int s = 0; s < dopri5::STAGES; ++s) kp[s] = k_[s].data();
        dopri5::dense_coefficients(theta_.data(), y1_.data(), kp, h, pb_.p, coef_.data());
        return field_.log_loss();  // of the step's last stage, evaluated at y1_
    }

    // A flow converging to a finite point has settled once its field is within the change that a state error at
    // the tolerance makes in it (at steps cut by stability, the step control keeps the stiff components of the
    // state at that error): the field cannot fall further, and its slides' multipliers are that error's noise.
    // Looked at each time the field has halved, and at every step once it is within twice the noise; a field that
    // hovers there without falling within the noise has settled as well.
    bool settled(double tau) {
        constexpr std::uint64_t patterns = 2;
        constexpr std::size_t hovering_checks = 16;
        const double fnorm = norm2(k_[0].data(), pb_.p);
        if (fnorm > next_settle_check_) return false;
        std::array<double, patterns> changes{};
        for (std::uint64_t pattern = 1; pattern <= patterns; ++pattern) {
            step_control::perturb_by_tolerance(theta_.data(), pb_.p, pb_.opt.rtol, pb_.opt.atol, pattern,
                                               ytmp_.data());
            velocity_(tau, ytmp_.data(), k_[1].data());
            for (std::size_t q = 0; q < pb_.p; ++q) k_[1][q] -= k_[0][q];
            changes[pattern - 1] = norm2(k_[1].data(), pb_.p);
        }
        const double noise = norm2(changes.data(), patterns) / std::sqrt(static_cast<double>(patterns));  // their rms
        next_settle_check_ = std::max(0.5 * fnorm, 2.0 * noise);
        hovering_ = fnorm <= 2.0 * noise ? hovering_ + 1 : 0;
        return fnorm <= noise || hovering_ >= hovering_checks;
    }

    double exponent() const {
        if (phases_.phase() == Phase::implicit) return RosenbrockStepper::EXPONENT;
        return high_order_ ? -1.0 / (dop853::ERROR_ORDER + 1) : step_control::EXPONENT;
    }

    void initial_modes() {
        if (pb_.NS == 0) return;
        // no slopes yet: deeper layers see the activations of the convention sigma'(h) = 1[h > 0]
        const std::vector<double>& h = geometry_.preactivations(theta_.data(), nullptr);
        SwitchScales scales;
        geometry_.scales(theta_.data(), slopes(), scales);
        std::vector<std::size_t> on_surface;
        for (std::size_t k = 0; k < pb_.NS; ++k) {
            const double b = scales.band(k, state_.band_boost[k]);
            if (h[k] > b) state_.mode[k] = Mode::active, state_.slopes[k] = 1.0;
            else if (h[k] < -b || b == 0.0) state_.mode[k] = Mode::inactive, state_.slopes[k] = 0.0;  // all inputs 0
            else state_.mode[k] = Mode::unset, on_surface.push_back(k);
        }
        if (!on_surface.empty()) {
            geometry_.project(theta_.data(), slopes(), on_surface);
            field_.on_surfaces(theta_.data(), on_surface);
            classifier_.classify(0.0, theta_.data(), on_surface);
        }
        log_.start(state_.mode);
    }

    void handle_events(double tau, const std::vector<std::size_t>& fired, const std::vector<std::size_t>& exits) {
        // Two-layer nets: a switch on its surface changes no output, so an event changes the field in its units'
        // blocks only, and only their switches are decided again (the others' slides and sides stand)
        std::vector<bool> touched(pb_.H, pb_.model.unit_block_size() == 0);
        for (std::size_t sw : fired) touched[sw % pb_.H] = true;
        for (std::size_t sw : exits) touched[sw % pb_.H] = true;
        for (std::size_t u = 0; u < pb_.H; ++u) touched_[u] = touched_[u] || touched[u];
        std::vector<std::size_t> set(fired.begin(), fired.end());
        for (std::size_t z : state_.Z)
            if (touched[z % pb_.H]) set.push_back(z);
        // (a pinned unit's switches that leave mode just put on their sides are still in their bands at that tau:
        // decided again with the others there, the hull kept the unit pinned, fuzz draw 16:7)
        for (std::size_t k : geometry_.in_bands(theta_.data(), slopes(), touched, state_.band_boost))
            if (!released_.holds(tau, k)) set.push_back(k);
        std::sort(set.begin(), set.end());
        set.erase(std::unique(set.begin(), set.end()), set.end());
        std::vector<Mode> before(fired.size());
        for (std::size_t a = 0; a < fired.size(); ++a) before[a] = state_.mode[fired[a]];
        std::vector<std::size_t> to_project;  // the set and every slide: all are put back on their surfaces
        std::set_union(set.begin(), set.end(), state_.Z.begin(), state_.Z.end(), std::back_inserter(to_project));
        geometry_.project(theta_.data(), slopes(), to_project);
        for (std::size_t sw : fired) {
            state_.refires[sw] = same_time(state_.last_fired_tau[sw], tau) ? state_.refires[sw] + 1 : 0;
            state_.last_fired_tau[sw] = tau;
        }
        field_.on_surfaces(theta_.data(), set);
        classifier_.classify(tau, theta_.data(), set, exits);
        // A switch found again and left on its side, or found again at the very same t whatever side it was
        // given, is grazing its surface within rounding: widen its band so that rounding does not cut every
        // following step short (a real crossing soon exceeds any such band).
        for (std::size_t a = 0; a < fired.size(); ++a) {
            const std::size_t sw = fired[a];
            double& boost = state_.band_boost[sw];
            const bool grazing = (state_.mode[sw] == before[a] && before[a] != Mode::sliding) || state_.refires[sw] > 0;
            boost = grazing ? std::min(boost * 16.0, 1e8) : 1.0;
        }
    }

    // The slide exits the locator proved, with those proved before at this very t: in a deeper net each set's exit
    // can bring the other's slides back (one sample's switches in successive layers; fuzz draw 19:180 alternated
    // between two such sets until the Zeno guard), so they are decided together.
    const std::vector<std::size_t>& exits_at(double tau) {
        exits_.at(tau);
        for (std::size_t sw : locator_.slide_exits()) exits_.add(tau, sw);
        return exits_.switches;
    }

    // Unstable branches (branches.hpp) are logged as `branch`, and the flow stays on its minimal-norm solution:
    // sliding surfaces that turn repulsive (sign changes of D found by the locator), and units just pinned at w = 0.
    // Leave mode leaves them as gradient descent does: the turned slides are flagged and decided again (the box
    // problem leaves them, classify.hpp), and a pinned unit leaves along its one-sided field of largest decrease.
    void mark_branches(double tau, const std::vector<SurfaceTurn>& turns) {
        const bool leave = pb_.opt.leave_branches;
        std::vector<std::size_t> leaving;
        for (const SurfaceTurn& turn : turns) {
            if (state_.mode[turn.z] != Mode::sliding) continue;
            // a turn to repulsive on a surface still marked so is no new branch (deep draw 18:40 found one again at
            // the same t, the next step reading nd past its noise on the attracting side at its start)
            const bool again = turn.to_repulsive && state_.branch[turn.z];
            state_.branch[turn.z] = turn.to_repulsive;
            if (again) continue;
            if (turn.to_repulsive && leave) leaving.push_back(turn.z);
            else if (turn.to_repulsive) log_.branch(tau, turn.z);
        }
        if (!leaving.empty()) handle_events(tau, {}, leaving);  // their slides end here
        for (std::size_t z : branches_.newly_pinned(geometry_, theta_.data(), touched_)) {
            if (leave) leave_pinned(tau, z % pb_.H);
            log_.branch(tau, z);
        }
    }

    // Leave mode: pinned unit u leaves along its one-sided field of largest decrease, if one descends (a switch
    // that slides along it stays in the sliding set)
    void leave_pinned(double tau, std::size_t u) {
        state_field(tau);  // the loss weights at theta_
        const std::vector<std::size_t>& all = branches_.on_surface(u);
        const BranchWatch::Pattern pattern = branches_.leave_pattern(all, theta_.data(), field_.weights());
        if (pattern.up.empty()) return;
        std::vector<std::size_t> on;
        std::vector<bool> up;
        for (std::size_t a = 0; a < all.size(); ++a)
            if (a != pattern.sliding) on.push_back(all[a]), up.push_back(pattern.up[a]);
        classifier_.put(tau, on, up);
        for (std::size_t sw : on) released_.add(tau, sw);  // handle_events leaves them to their sides at this tau
    }

    const Problem pb_;
    Field field_;
    SwitchState state_;
    SwitchGeometry geometry_;
    Sliding sliding_;
    Velocity velocity_;
    EventLog log_;
    Classifier classifier_;
    BranchWatch branches_;
    EventLocator locator_;
    FieldJacobian jacobian_;
    StiffStepper stiff_;
    RosenbrockStepper rosenbrock_;
    PhasePolicy phases_;
    DenseSamples samples_;
    std::vector<double> theta_, y1_, ytmp_, coef_;  // the state, a step's end, a stage's state, the dense output
    std::vector<double> k_[dop853::DENSE_STAGES];   // the stage fields; k_[0] is the field at theta_
    std::size_t evaluations_seen_ = 0;              // by the last accepted step
    bool high_order_ = false;                       // the current step is DOP853's
    double next_settle_check_ = INFINITY;           // settled() looks again once the field's norm is below this
    std::size_t hovering_ = 0;                      // settled()'s checks in a row with the field near its noise
    SwitchesAtTau exits_;                           // exits_at's
    std::vector<bool> touched_;                     // the units whose switches the current event decided again
    SwitchesAtTau released_;                        // a pinned unit's switches that leave mode put on their sides
    StepMap step_;                                   // the current step's time map
};

}  // namespace fastflow
