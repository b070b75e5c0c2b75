// The event-driven integrator of the Clarke subgradient flow d theta/dt = -m(theta) (NUMERICS.md §3-§5).
//
// Time: classification losses run in tau = log(1 + t) (dt/dtau = e^tau folded into the log-space sample weights),
// so horizons of t = 1e30 and log t = 1e8 cost steps in log t; the square loss runs in tau = t.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "boxqp.hpp"
#include "linalg.hpp"
#include "loss.hpp"
#include "minnorm.hpp"
#include "model.hpp"
#include "rk.hpp"
#include "roots.hpp"

namespace fastflow {

enum class Status : int { converged, t_max, max_steps, max_events, stalled, interrupted, error };
enum class EventKind : int { activate, deactivate, slide_start, slide_end, branch };

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
    std::vector<double> theta_eval, log_loss_eval;
};

// log t of tau = log(1 + t) without overflow
inline double log_t(double tau) { return tau > 40.0 ? tau : std::log(std::expm1(tau)); }

// log(dt/dtau)
inline double log_time_factor(Loss loss, double tau) { return is_classification(loss) ? tau : 0.0; }

class Integrator {
public:
    // X: n x d_in; Y: n labels (+-1) for classification, n x d_out targets for the square loss
    Integrator(const Model& model, const double* X, const double* Y, std::size_t n, Options opts)
        : model_(model), X_(X), Y_(Y), n_(n), p_(model.n_params()), H_(model.n_hidden()), NS_(n * H_),
          c_(model.d_out()), opt_(std::move(opts)) {
        if (!model.linear_switches() && model.switch_poly_degree(dopri5::DENSE_DEGREE) > max_poly_degree)
            throw std::invalid_argument("networks deeper than " + std::to_string(max_poly_degree / dopri5::DENSE_DEGREE + 1) +
                                        " layers are not supported (pre-activation polynomials of too high degree)");
        theta_.resize(p_);
        y1_.resize(p_);
        ytmp_.resize(p_);
        ftmp_.resize(p_);
        normal_.resize(p_);
        for (auto& k : k_) k.resize(p_);
        coef_.resize((dopri5::DENSE_DEGREE + 1) * p_);
        out_.resize(n_ * c_);
        G_.resize(n_ * c_);
        logl_.resize(n_ * c_);
        scratch_.resize(model.scratch_size());
        slopes_.assign(NS_, 0.0);
        mode_.assign(NS_, inactive);
        branch_.assign(NS_, false);
        hc_.resize((dopri5::DENSE_DEGREE + 1) * NS_);
        h_.resize(NS_);
    }

    // What the constructor and a run allocate, in bytes (as a double: checked before allocating, so that a huge
    // n x width fails with a clear error instead of an allocation failure or the OOM killer half-way)
    static double bytes_needed(const Model& model, std::size_t n, std::size_t n_eval) {
        auto real = [](std::size_t v) { return static_cast<double>(v); };
        const double p = real(model.n_params()), ns = real(n) * real(model.n_hidden());
        const double per_switch = dopri5::DENSE_DEGREE + 11.0 +
            (model.linear_switches() ? 0.0 : real(model.switch_poly_degree(dopri5::DENSE_DEGREE)) + 1.0);
        const double stiff = p <= real(stiff_max_params) ? 3.0 * p * p + real(stiff_columns * stiff_columns) * p : 0.0;
        const double doubles = (6.0 + dopri5::STAGES + dopri5::DENSE_DEGREE) * p + 3.0 * real(n) * real(model.d_out()) +
                               real(model.scratch_size()) + per_switch * ns + stiff + real(n_eval) * (p + 1.0);
        return 8.0 * doubles + ns;
    }

    Result run(const double* theta0, const std::function<bool()>& should_stop = {}) {
        Result res;
        std::copy(theta0, theta0 + p_, theta_.begin());
        double tau = 0.0;
        // one Integrator runs many trajectories (flow_many): start each from a clean slate
        mode_.assign(NS_, inactive);
        slopes_.assign(NS_, 0.0);
        branch_.assign(NS_, false);
        band_boost_.assign(NS_, 1.0);
        last_fired_tau_.assign(NS_, -1.0);
        refires_.assign(NS_, 0);
        Z_.clear();
        stiff_ = degenerate_ = start_scales_known_ = false;
        events_ = &res.events;
        res_ = &res;
        event_switch_.clear(), event_before_.clear();
        initial_modes();
        field(tau, theta_.data(), k_[0].data(), res);
        std::size_t eval_next = 0;
        emit_evals(res, eval_next, tau, nullptr);
        double h = initial_step(tau, res);
        const double log_t_stall_from = std::log(norm2(theta_.data(), p_)) - std::log(norm2(k_[0].data(), p_)) +
                                        std::log(stall_wait);
        double last_progress_tau = tau;
        std::size_t stuck_rounds = 0;
        bool just_rejected = false;
        jacobian_current_ = false;
        while (true) {
            if (should_stop && should_stop()) {  // rate-limited by the caller (SignalPoll: 50 ms)
                res.status = Status::interrupted, res.message = "interrupted";
                break;
            }
            if (tau >= opt_.tau_max) {
                res.status = Status::t_max, res.message = "reached t_max";
                break;
            }
            if (res.n_steps >= opt_.max_steps) {
                res.status = Status::max_steps, res.message = "max_steps reached";
                break;
            }
            const double fnorm = norm2(k_[0].data(), p_);
            if (!std::isfinite(fnorm)) {
                // a classification loss stuck above l(0) decays no weight e^{tau - q}: late enough, time itself
                // overflows; earlier, the data or weights are too large for float64 weights
                if (is_classification(opt_.loss) && tau >= late_overflow_tau &&
                    log_loss_at(tau, theta_.data()) >= log_ell(opt_.loss, 0.0)) {
                    res.status = Status::stalled;
                    res.message = "the loss never fell below l(0): stuck (e.g. at a saddle or on non-separable data)";
                } else {
                    res.status = Status::error;
                    res.message = "the vector field overflows float64: rescale the data or the initialisation";
                }
                break;
            }
            const double log_grad = std::log(fnorm) - log_time_factor(opt_.loss, tau);
            // A classification run stuck above l(0) whose loss and parameters both change by less than stall_rate
            // of themselves per unit of log t (dL/dlog t = t |grad L|^2, |d theta/dlog t| = t |grad L|) is stalled:
            // in tau the field near such a point is stiff like e^tau, so waiting for t_max would cost steps growing
            // like t. (The relative motion keeps a small initialisation, whose loss barely moves, from stalling;
            // the rule waits for t >> the run's own starting time scale |theta0| / |grad L(theta0)|.)
            if (is_classification(opt_.loss) && log_t(tau) >= log_t_stall_from &&
                2.0 * std::log(fnorm) - tau <= std::log(stall_rate) + logL_ &&
                std::log(fnorm) - tau <= std::log(stall_rate * norm2(theta_.data(), p_)) &&
                log_loss_at(tau, theta_.data()) >= log_ell(opt_.loss, 0.0)) {
                res.status = Status::stalled;
                res.message = "the loss never fell below l(0) and the gradient vanished: stuck";
                break;
            }
            if (fnorm == 0.0 || (opt_.gtol > 0.0 && log_grad <= std::log(opt_.gtol))) {
                res.status = Status::converged;
                res.message = "the (sub)gradient vanished: a stationary point";
                break;
            }
            // late in a classification run the flow is stiff in tau (the margins of the support relax at rate
            // O(1) while the direction moves like 1/tau): continue in u = log tau with an L-stable method
            // (or earlier, once explicit steps in tau are cut far below tau itself: stiffness, e.g. two samples
            // that no network can separate held at margin 0 while others keep growing, or two nearly equal inputs
            // with opposite labels)
            if (!stiff_ && is_classification(opt_.loss) && p_ <= stiff_max_params &&
                (tau >= stiff_from_tau || (res.n_steps >= 100 && h < 1e-3 * tau))) {
                stiff_ = true;
                h = std::min(h / tau, 0.1);
            }
            const double span = stiff_ ? std::log(opt_.tau_max) - std::log(tau) : opt_.tau_max - tau;
            const bool last = h >= span;
            h = std::min(h, span);
            const double origin = stiff_ ? std::log(tau) : tau;
            if (h < 10.0 * (std::nextafter(origin, INFINITY) - origin)) {
                res.status = Status::error, res.message = "step size fell below the resolution of t";
                break;
            }
            step_tau0_ = tau, step_h_ = h;
            const double err = stiff_ ? attempt_stiff_step(tau, h, res) : attempt_step(tau, h, res);
            if (!(err <= 1.0)) {
                ++res.n_rejected;
                h *= std::isfinite(err) ? std::max(dopri5::MIN_FACTOR, dopri5::SAFETY * std::pow(err, -0.2))
                                        : dopri5::MIN_FACTOR;
                just_rejected = true;
                continue;
            }
            ++res.n_steps;
            if (stiff_) {
                hermite_coefficients(res);
            } else {
                const double* kp[dopri5::STAGES];
                for (int s = 0; s < dopri5::STAGES; ++s) kp[s] = k_[s].data();
                dopri5::dense_coefficients(theta_.data(), y1_.data(), kp, h, p_, coef_.data());
            }
            std::vector<std::size_t> fired;
            const double sigma_event = find_events(fired, res);
            jacobian_current_ = false;
            // no growth right after a rejection (Hairer & Wanner's DOPRI5): it would only be rejected again
            const double h_next = h * (just_rejected ? std::min(1.0, dopri5::SAFETY * std::pow(err, -0.2))
                                       : err == 0.0  ? dopri5::MAX_FACTOR
                                                     : std::min(dopri5::MAX_FACTOR,
                                                                std::max(dopri5::MIN_FACTOR,
                                                                         dopri5::SAFETY * std::pow(err, -0.2))));
            just_rejected = false;
            if (sigma_event >= 0.0) {
                const double tau_event = step_tau(sigma_event);
                emit_evals(res, eval_next, tau_event, coef_.data());
                dopri5::dense_eval(coef_.data(), p_, sigma_event, theta_.data());
                tau = tau_event;
                handle_events(tau, fired, res);
                field(tau, theta_.data(), k_[0].data(), res);
                if (res.events.size() > opt_.max_events) {
                    res.status = Status::max_events, res.message = "max_events reached";
                    break;
                }
                if (tau - last_progress_tau > 1e-12 * std::abs(tau)) {
                    last_progress_tau = tau, stuck_rounds = 0;
                } else if (++stuck_rounds > 1000) {
                    res.status = Status::max_events, res.message = "Zeno: events accumulate at one time";
                    break;
                }
            } else {
                const double tau_new = last ? opt_.tau_max : step_tau(1.0);
                emit_evals(res, eval_next, tau_new, coef_.data());
                std::swap(theta_, y1_);
                tau = tau_new;
                if (!Z_.empty()) {
                    project(Z_);  // the step's truncation error leaves sliding neurons a rounding off their surfaces
                    field(tau, theta_.data(), k_[0].data(), res);
                } else {
                    std::swap(k_[0], k_[6]);
                    // the step's end is the next step's start, slopes unchanged: its switch scales carry over
                    std::swap(scale0_, scale1_), std::swap(floor0_, floor1_);
                    start_scales_known_ = true;
                }
            }
            h = h_next;
        }
        // evaluation times at the end of the run up to the rounding of t -> tau (a run may stop at an event whose t
        // is then asked for) get the final state; those past it are left NaN
        emit_evals(res, eval_next, tau + 4.0 * (std::nextafter(tau, INFINITY) - tau), nullptr);
        res.theta_eval.resize(opt_.tau_eval.size() * p_, std::numeric_limits<double>::quiet_NaN());
        res.log_loss_eval.resize(opt_.tau_eval.size(), std::numeric_limits<double>::quiet_NaN());
        field(tau, theta_.data(), k_[0].data(), res);
        res.tau = tau;
        res.theta = theta_;
        res.log_loss = logL_;
        res.log_grad_norm = std::log(norm2(k_[0].data(), p_)) - log_time_factor(opt_.loss, tau);
        // a classification run that ends with L >= l(0) never reached the regime where every sample is classified
        if ((res.status == Status::t_max || res.status == Status::converged) && is_classification(opt_.loss) &&
            logL_ >= log_ell(opt_.loss, 0.0)) {
            res.status = Status::stalled;
            res.message = "the loss never fell below l(0): stuck (e.g. at a saddle or on non-separable data)";
        }
        events_ = nullptr;
        res_ = nullptr;
        return res;
    }

private:
    enum : std::uint8_t { inactive = 0, active = 1, sliding = 2, unset = 3 };

    // --- the vector field -----------------------------------------------------------------------------------
    // F = -(dt/dtau) grad L with the current modes; on the sliding set the tangent (minimal-norm) combination.
    void field(double tau, const double* th, double* F, Result& res) {
        ++res.n_rhs;
        model_.forward(th, X_, n_, slopes_.data(), out_.data(), scratch_.data());
        loss_weights(tau);
        model_.vjp(th, X_, n_, slopes_.data(), G_.data(), F, scratch_.data());
        if (!Z_.empty()) add_sliding(th, F);
    }

    // G = -(dt/dtau) dL/dPhi, computed in log space; also log L
    void loss_weights(double tau) {
        if (opt_.loss == Loss::square) {
            double s = 0.0;
            for (std::size_t q = 0; q < n_ * c_; ++q) {
                G_[q] = Y_[q] - out_[q];
                s += G_[q] * G_[q];
            }
            logL_ = std::log(0.5 * s);
            return;
        }
        // binary (d_out = 1) or one-vs-all (Y_ik = +-1 for every output k): L = sum_ik l(Y_ik Phi_ik)
        const double logfac = log_time_factor(opt_.loss, tau);
        for (std::size_t q = 0; q < n_ * c_; ++q) {
            const double margin = Y_[q] * out_[q];
            logl_[q] = log_ell(opt_.loss, margin);
            G_[q] = Y_[q] * std::exp(logfac + log_neg_dell(opt_.loss, margin));
        }
        logL_ = log_sum_exp(logl_.data(), n_ * c_);
    }

    // directions D_a = dF/ds_a for the sliding switches, one row each
    void slope_directions(const std::vector<std::size_t>& set, const double* th) {
        D_.resize(set.size() * p_);
        for (std::size_t a = 0; a < set.size(); ++a) model_.slope_direction(th, X_, slopes_.data(), set[a], G_.data(), &D_[a * p_]);
    }

    void gram(const std::vector<double>& rows, std::size_t k, std::vector<double>& Q) const {
        Q.assign(k * k, 0.0);
        for (std::size_t a = 0; a < k; ++a)
            for (std::size_t b = 0; b <= a; ++b)
                Q[a * k + b] = Q[b * k + a] = dot(&rows[a * p_], &rows[b * p_], p_);
    }

    // Filippov sliding: s minimises |F0 + D s| without bounds, which makes F tangent to every surface in Z. When
    // the surfaces are dependent (e.g. a neuron pinned at w = 0) s is not unique: take the box-constrained
    // minimiser, whose velocity is the minimal-norm subgradient, and watch the normal velocities for the exit.
    void add_sliding(const double* th, double* F) {
        if (!model_.linear_switches()) return hull_sliding(th, F);
        const std::size_t k = Z_.size();
        slope_directions(Z_, th);
        gram(D_, k, Q_);
        std::vector<double> b(k);
        for (std::size_t a = 0; a < k; ++a) b[a] = -dot(&D_[a * p_], F, p_);
        degenerate_ = solve_psd(Q_, b, k, s_) < k;
        if (degenerate_) {
            for (double& v : b) v = -v;
            s_ = box_qp(Q_, b, k, norm2(F, p_));
        }
        for (std::size_t a = 0; a < k; ++a)
            for (std::size_t q = 0; q < p_; ++q) F[q] += s_[a] * D_[a * p_ + q];
    }

    // Deeper networks: the one-sided fields are multilinear, not affine, in the slopes of units on one sample's
    // path, so the Clarke set is the convex hull of the fields at the corners of the slope box (NUMERICS §3):
    // F <- its minimal-norm point (Wolfe). Samples are independent: the hull is a Minkowski sum over the samples
    // that have sliding units, and its linear minimisation picks each sample's best corner.
    void hull_sliding(const double* th, double* F) {
        degenerate_ = true;  // no multipliers: exits are read off the normal velocities
        std::vector<std::size_t> samples;
        for (std::size_t z : Z_)
            if (samples.empty() || samples.back() != z / H_) samples.push_back(z / H_);
        std::vector<std::vector<double>> corners(samples.size());
        std::vector<double> sl(H_), base(p_);
        for (std::size_t g = 0; g < samples.size(); ++g) {
            const std::size_t i = samples[g];
            std::vector<std::size_t> units;
            for (std::size_t z : Z_)
                if (z / H_ == i) units.push_back(z % H_);
            if (units.size() > max_hull_units)
                throw std::runtime_error("more than " + std::to_string(max_hull_units) +
                                         " units of one sample slide at once in a deep network");
            const std::size_t count = std::size_t{1} << units.size();
            corners[g].resize(count * p_);
            for (std::size_t c = 0; c < count; ++c) {
                std::copy(slopes_.begin() + static_cast<std::ptrdiff_t>(i * H_),
                          slopes_.begin() + static_cast<std::ptrdiff_t>((i + 1) * H_), sl.begin());
                for (std::size_t a = 0; a < units.size(); ++a) sl[units[a]] = (c >> a) & 1U ? 1.0 : 0.0;
                model_.vjp(th, X_ + i * model_.d_in(), 1, sl.data(), G_.data() + i * c_, &corners[g][c * p_],
                           scratch_.data());
            }
            // relative to the all-inactive corner, which F already holds
            for (std::size_t c = count; c-- > 0;)
                for (std::size_t q = 0; q < p_; ++q) corners[g][c * p_ + q] -= corners[g][q];
        }
        std::copy(F, F + p_, base.begin());
        auto lmo = [&](const double* x, double* v) {
            std::copy(base.begin(), base.end(), v);
            for (const auto& group : corners) {
                const std::size_t count = group.size() / p_;
                std::size_t best = 0;
                double best_value = INFINITY;
                for (std::size_t c = 0; c < count; ++c) {
                    const double value = dot(x, &group[c * p_], p_);
                    if (value < best_value) best_value = value, best = c;
                }
                for (std::size_t q = 0; q < p_; ++q) v[q] += group[best * p_ + q];
            }
        };
        min_norm_point(p_, lmo, F);
    }

    // How far s may stray out of [0,1] by rounding: s is a ratio of sample weights, and for the square loss the
    // residual Phi - y cancels, so near a minimum its relative error is eps (|Phi| + |y|) / |Phi - y|.
    double exit_band(std::size_t sample) const {
        if (opt_.loss != Loss::square) return slide_exit_band;
        double terms = 0.0, residual = 0.0;
        for (std::size_t c = 0; c < c_; ++c) {
            terms += std::abs(out_[sample * c_ + c]) + std::abs(Y_[sample * c_ + c]);
            residual += std::abs(G_[sample * c_ + c]);
        }
        return std::max(slide_exit_band, 64.0 * std::numeric_limits<double>::epsilon() * terms / residual);
    }

    // >= 0 while every sliding switch can stay on its surface
    double slide_margin(const double* th, const double* F, bool banded = true) {
        double worst = INFINITY;
        if (!degenerate_) {
            // s is only known to rounding of the terms that cancel in it: a slide ends once s is clearly out
            for (std::size_t a = 0; a < Z_.size(); ++a)
                worst = std::min(worst, std::min(s_[a], 1.0 - s_[a]) + (banded ? exit_band(Z_[a] / H_) : 0.0));
            return worst;
        }
        const double fnorm = norm2(F, p_);
        for (std::size_t z : Z_) {
            model_.switch_normal(th, X_, slopes_.data(), z, normal_.data());
            const double nn = norm2(normal_.data(), p_);
            worst = std::min(worst, 1e-9 * nn * fnorm - std::abs(dot(normal_.data(), F, p_)));
        }
        return worst;
    }

    // --- modes and events -----------------------------------------------------------------------------------
    // The rounding band of switch k: its own scale, floored by the largest scale of its layer on the same sample
    // (a neuron whose weights reach zero, e.g. sliding into the apex of its surfaces, has only rounding noise left
    // and no scale of its own). `scales` and `floors` come from switch_scales at the theta in question.
    double band(std::size_t k, const std::vector<double>& scales, const std::vector<double>& floors) const {
        return 32.0 * std::numeric_limits<double>::epsilon() * std::max(band_boost_[k] * scales[k], floors[k]);
    }

    void switch_scales(const double* th, std::vector<double>& scales, std::vector<double>& floors) const {
        scales.resize(NS_);
        floors.resize(NS_);
        model_.switch_scales(th, X_, n_, slopes_.data(), scales.data());
        std::vector<double> layer_max;
        for (std::size_t i = 0; i < n_; ++i) {
            layer_max.assign(layer_max.size(), 0.0);
            for (std::size_t u = 0; u < H_; ++u) {
                const auto layer = static_cast<std::size_t>(model_.switch_layer(u));
                if (layer >= layer_max.size()) layer_max.resize(layer + 1, 0.0);
                layer_max[layer] = std::max(layer_max[layer], scales[i * H_ + u]);
            }
            for (std::size_t u = 0; u < H_; ++u)
                floors[i * H_ + u] = layer_max[static_cast<std::size_t>(model_.switch_layer(u))];
        }
    }

    void initial_modes() {
        if (NS_ == 0) return;
        // no slopes yet: deeper layers see the activations of the convention sigma'(h) = 1[h > 0]
        model_.preactivations(theta_.data(), X_, n_, nullptr, h_.data(), scratch_.data());
        switch_scales(theta_.data(), scale0_, floor0_);
        std::vector<std::size_t> on_surface;
        for (std::size_t k = 0; k < NS_; ++k) {
            const double b = band(k, scale0_, floor0_);
            if (h_[k] > b) mode_[k] = active, slopes_[k] = 1.0;
            else if (h_[k] < -b || b == 0.0) mode_[k] = inactive, slopes_[k] = 0.0;  // b = 0: all inputs zero
            else mode_[k] = unset, on_surface.push_back(k);
        }
        if (!on_surface.empty()) {
            project(on_surface);
            classify(0.0, on_surface);
        }
    }

    // minimal-norm correction of theta putting it exactly on the surfaces of `set`
    void project(const std::vector<std::size_t>& set) {
        const std::size_t k = set.size();
        const std::vector<double> Q = normal_gram(set);
        model_.preactivations(theta_.data(), X_, n_, slopes_.data(), h_.data(), scratch_.data());
        std::vector<double> rhs(k), lam;
        for (std::size_t a = 0; a < k; ++a) rhs[a] = h_[set[a]];
        solve_psd(Q, rhs, k, lam);
        for (std::size_t a = 0; a < k; ++a)
            for (std::size_t q = 0; q < p_; ++q) theta_[q] -= lam[a] * N_[a * p_ + q];
    }

    // N_ <- the normals of the switches in `set` at theta_ (one row each); returns their Gram matrix
    std::vector<double> normal_gram(const std::vector<std::size_t>& set) {
        N_.resize(set.size() * p_);
        for (std::size_t a = 0; a < set.size(); ++a)
            model_.switch_normal(theta_.data(), X_, slopes_.data(), set[a], &N_[a * p_]);
        std::vector<double> Q;
        gram(N_, set.size(), Q);
        return Q;
    }

    // Decide the mode of every switch in `set` (all on their surfaces) from the minimal-norm element of the
    // Clarke subdifferential over the box s in [0,1]^set: interior s slides; otherwise the pair leaves to the side
    // the velocity points to. A pair that leaves takes that side's slope, which changes the field the others see,
    // so the box problem is solved again over the undecided ones until no more leave. Records the mode changes.
    void classify(double tau, std::vector<std::size_t> set) {
        std::sort(set.begin(), set.end());
        set.erase(std::unique(set.begin(), set.end()), set.end());
        std::sort(set.begin(), set.end(), [this](std::size_t a, std::size_t b) {
            const std::size_t ua = a % H_, ub = b % H_;
            return ua != ub ? ua < ub : a < b;
        });
        std::vector<std::uint8_t> old(set.size());
        for (std::size_t a = 0; a < set.size(); ++a) old[a] = mode_[set[a]], slopes_[set[a]] = 0.0;
        std::vector<std::size_t> rest;
        for (std::size_t z : Z_)
            if (std::find(set.begin(), set.end(), z) == set.end()) rest.push_back(z);
        std::vector<std::size_t> undecided = set;
        if (model_.linear_switches()) decide_by_box(tau, undecided, rest);
        else decide_by_hull(tau, undecided, rest);
        Z_ = rest;
        Z_.insert(Z_.end(), undecided.begin(), undecided.end());
        // A switch decided at a bound whose surface contains the sliding set's intersection (its normal lies in
        // their span: a duplicated or parallel sample) stays on its surface as long as they slide: it slides too.
        if (!Z_.empty()) {
            const std::vector<double> Q = normal_gram(Z_);  // companions add nothing to the span
            const std::size_t k = Z_.size();
            for (std::size_t sw : set)
                if (std::find(undecided.begin(), undecided.end(), sw) == undecided.end() &&
                    in_normal_span(sw, Q, k))
                    undecided.push_back(sw), Z_.push_back(sw);
        }
        for (std::size_t sw : undecided) mode_[sw] = sliding, slopes_[sw] = 0.0;
        std::sort(Z_.begin(), Z_.end());
        for (std::size_t a = 0; a < set.size(); ++a) {
            if (record(tau, old[a], mode_[set[a]], set[a]) && branch_[set[a]])
                push_event(tau, EventKind::branch, set[a], unset);
        }
    }

    // Two-layer networks: the box problem over the undecided switches, solved again after each leave (see
    // classify); those left undecided slide. A side taken in an early round reads the field before later leaves
    // (e.g. two samples of one neuron, each turning the other's velocity around): every side is checked against
    // the final field, and a switch that it sends back across is decided again with the others fixed.
    void decide_by_box(double tau, std::vector<std::size_t>& undecided, const std::vector<std::size_t>& rest) {
        const std::vector<std::size_t> all = undecided;
        for (std::size_t pass = 0; pass <= all.size(); ++pass) {
            box_rounds(tau, undecided, rest);
            Z_ = rest;
            Z_.insert(Z_.end(), undecided.begin(), undecided.end());
            field(tau, theta_.data(), ftmp_.data(), *res_);
            const double fnorm = norm2(ftmp_.data(), p_);
            std::vector<std::size_t> turned;
            for (std::size_t sw : all) {
                if (std::find(undecided.begin(), undecided.end(), sw) != undecided.end()) continue;
                double tol;
                const double dh = normal_velocity(sw, fnorm, tol);
                if (mode_[sw] == active ? dh < -tol : dh > tol) turned.push_back(sw);
            }
            if (turned.empty()) return;
            for (std::size_t sw : turned) slopes_[sw] = 0.0, undecided.push_back(sw);
        }
    }

    // n . F for switch sw and the field in ftmp_ (norm fnorm), with n left in normal_; tol: tangency to the box
    // solver's own resolution (its optimality tolerance is 1e-13 relative)
    double normal_velocity(std::size_t sw, double fnorm, double& tol) {
        model_.switch_normal(theta_.data(), X_, slopes_.data(), sw, normal_.data());
        tol = 1e-12 * norm2(normal_.data(), p_) * fnorm;
        return dot(normal_.data(), ftmp_.data(), p_);
    }

    void box_rounds(double tau, std::vector<std::size_t>& undecided, const std::vector<std::size_t>& rest) {
        const std::size_t rounds = undecided.size();
        for (std::size_t round = 0; round <= rounds && !undecided.empty(); ++round) {
            Z_ = rest;
            field(tau, theta_.data(), ftmp_.data(), *res_);
            const std::size_t k = undecided.size();
            slope_directions(undecided, theta_.data());
            gram(D_, k, Q_);
            std::vector<double> b(k);
            for (std::size_t a = 0; a < k; ++a) b[a] = dot(&D_[a * p_], ftmp_.data(), p_);
            const std::vector<double> s = box_qp(Q_, b, k, norm2(ftmp_.data(), p_));
            for (std::size_t a = 0; a < k; ++a)
                for (std::size_t q = 0; q < p_; ++q) ftmp_[q] += s[a] * D_[a * p_ + q];
            const double fnorm = norm2(ftmp_.data(), p_);
            std::vector<std::size_t> still;
            std::vector<int> side(k, -1);  // -1 slides, 0 inactive, 1 active
            for (std::size_t a = 0; a < k; ++a) {
                const std::size_t sw = undecided[a];
                double tol;
                const double dh = normal_velocity(sw, fnorm, tol);
                const double nd = dot(normal_.data(), &D_[a * p_], p_);  // d(dh)/ds
                // box_qp puts variables at their bounds to its tolerance; s within the exit band of a bound is at
                // it, for every switch alike (a slide whose exit was just found, s out of [0,1] by more than the
                // band right after, ends there; and one switch's tie must not be decided unlike another's)
                const double at_bound = exit_band(sw / H_);
                if (s[a] > at_bound && s[a] < 1.0 - at_bound) {
                    // both one-sided fields point away from the surface the minimal-norm solution keeps
                    branch_[sw] = dh - s[a] * nd < -tol && dh + (1.0 - s[a]) * nd > tol;
                    continue;
                }
                // s at a bound: the box problem's KKT conditions give the side, s -> 1 active and s -> 0 inactive on
                // an attractive surface (nd < 0), swapped on a repulsive one (NUMERICS §3): off tangency this is
                // sign(dh). A switch whose normal velocity is rounding noise (it reaches its surface tangentially,
                // or a slide ends there) keeps the one-sided field of its bound (the minimal-norm element), unless
                // it was put there at this very t already and the dense output went straight across: then the
                // curvature decides, and it goes across; and if it comes straight back from there too, it slides.
                // Both one-sided normal velocities of one sign: it crosses, whatever s the box solver left (its
                // slope may barely move the field, e.g. a sample whose loss weight underflows: s is then arbitrary).
                const double v_inactive = dh - s[a] * nd, v_active = dh + (1.0 - s[a]) * nd;
                bool up;
                if (std::abs(dh) <= tol) {
                    // (a count left from an earlier t is stale: a slide may end here without its switch firing)
                    const std::size_t refires = same_time(last_fired_tau_[sw], tau) ? refires_[sw] : 0;
                    if (refires >= 2) continue;  // put on both sides at this t and back each time: it slides
                    up = refires == 1 ? mode_[sw] == inactive : s[a] >= 0.5;
                } else if (std::min(v_inactive, v_active) > tol || std::max(v_inactive, v_active) < -tol) {
                    up = dh > 0.0;
                } else {
                    up = (s[a] >= 0.5) != (nd > 0.0);
                }
                side[a] = up ? 1 : 0;
            }
            // A switch leaving to the side opposite its bound (repulsive) changes the field every other decision
            // of this round was read from: then it alone is decided, and the box problem is solved again.
            std::size_t flip = k;
            for (std::size_t a = 0; a < k && flip == k; ++a)
                if (side[a] >= 0 && (side[a] == 1) != (s[a] >= 0.5)) flip = a;
            for (std::size_t a = 0; a < k; ++a) {
                if (side[a] < 0 || (flip < k && a != flip)) {
                    still.push_back(undecided[a]);
                    continue;
                }
                mode_[undecided[a]] = side[a] == 1 ? active : inactive;
                slopes_[undecided[a]] = side[a] == 1 ? 1.0 : 0.0;
            }
            const bool settled = still.size() == undecided.size();
            undecided = still;
            if (settled) break;
        }
    }

    // Deep networks: the minimal-norm element of the hull over the undecided (and sliding) switches; a switch it
    // moves off its surface leaves to that side, the one moving fastest first (its slope changes the hull), until
    // the rest stay: they slide.
    void decide_by_hull(double tau, std::vector<std::size_t>& undecided, const std::vector<std::size_t>& rest) {
        while (!undecided.empty()) {
            Z_ = rest;
            Z_.insert(Z_.end(), undecided.begin(), undecided.end());
            std::sort(Z_.begin(), Z_.end());
            field(tau, theta_.data(), ftmp_.data(), *res_);
            const double fnorm = norm2(ftmp_.data(), p_);
            std::size_t leaving = undecided.size();
            double fastest = 0.0, leaving_rate = 0.0;
            for (std::size_t a = 0; a < undecided.size(); ++a) {
                model_.switch_normal(theta_.data(), X_, slopes_.data(), undecided[a], normal_.data());
                const double nn = norm2(normal_.data(), p_);
                const double rate = nn > 0.0 ? dot(normal_.data(), ftmp_.data(), p_) / nn : 0.0;
                if (std::abs(rate) > std::max(fastest, 1e-9 * fnorm)) fastest = std::abs(rate), leaving = a, leaving_rate = rate;
            }
            if (leaving == undecided.size()) return;
            const bool up = leaving_rate > 0.0;
            mode_[undecided[leaving]] = up ? active : inactive;
            slopes_[undecided[leaving]] = up ? 1.0 : 0.0;
            undecided.erase(undecided.begin() + static_cast<std::ptrdiff_t>(leaving));
        }
    }

    // whether the normal of switch sw is a combination of the k normals in N_ (Gram matrix Q), to rounding
    bool in_normal_span(std::size_t sw, const std::vector<double>& Q, std::size_t k) {
        model_.switch_normal(theta_.data(), X_, slopes_.data(), sw, normal_.data());
        std::vector<double> rhs(k), lam;
        for (std::size_t a = 0; a < k; ++a) rhs[a] = dot(&N_[a * p_], normal_.data(), p_);
        solve_psd(Q, rhs, k, lam);
        const double nn = norm2(normal_.data(), p_);
        for (std::size_t a = 0; a < k; ++a)
            for (std::size_t q = 0; q < p_; ++q) normal_[q] -= lam[a] * N_[a * p_ + q];
        return norm2(normal_.data(), p_) <= 1e-9 * nn;
    }

    // Logs the mode change of switch sw; returns whether it started a slide. Changes of the same switch at the
    // same tau (handled in two rounds, e.g. a slide that ends and restarts at once) are logged as their net change.
    bool record(double tau, std::uint8_t before, std::uint8_t after, std::size_t sw) {
        for (std::size_t e = events_->size(); e-- > 0 && same_time((*events_)[e].tau, tau);) {
            if (event_switch_[e] != sw) continue;
            if ((*events_)[e].kind != EventKind::branch) before = event_before_[e];
            events_->erase(events_->begin() + static_cast<std::ptrdiff_t>(e));
            event_switch_.erase(event_switch_.begin() + static_cast<std::ptrdiff_t>(e));
            event_before_.erase(event_before_.begin() + static_cast<std::ptrdiff_t>(e));
        }
        if (before == after) return false;
        if (after == sliding) push_event(tau, EventKind::slide_start, sw, before);
        else if (before == sliding) push_event(tau, EventKind::slide_end, sw, before);
        else if (before != unset) push_event(tau, after == active ? EventKind::activate : EventKind::deactivate, sw, before);
        return after == sliding;
    }

    void push_event(double tau, EventKind kind, std::size_t sw, std::uint8_t before) {
        const std::size_t unit = sw % H_;
        events_->push_back({tau, kind, sw / H_, model_.switch_layer(unit), model_.switch_neuron(unit)});
        event_switch_.push_back(sw);
        event_before_.push_back(before);
    }

    // The earliest event in the accepted step [tau, tau + h] as a step fraction (-1 if none); `fired` gets every
    // switch whose event falls at that time (simultaneous events are handled together).
    double find_events(std::vector<std::size_t>& fired, Result& res) {
        fired.clear();
        if (NS_ == 0) return -1.0;
        std::vector<std::pair<double, std::size_t>> hits;
        if (!start_scales_known_) switch_scales(theta_.data(), scale0_, floor0_);
        start_scales_known_ = false;
        switch_scales(y1_.data(), scale1_, floor1_);
        if (model_.linear_switches()) polynomial_hits(hits);
        else layered_hits(hits);
        double sigma_min = 2.0;
        for (auto& hk : hits) sigma_min = std::min(sigma_min, hk.first);
        const double sigma_exit = Z_.empty() ? -1.0 : find_slide_exit(std::min(sigma_min, 1.0), res);
        if (sigma_exit >= 0.0 && sigma_exit < sigma_min) sigma_min = sigma_exit;
        if (sigma_min > 1.0) return -1.0;
        // events within a few ulps of t of the earliest one are simultaneous (ulps of the step's own time
        // coordinate: a fast start at t ~ 1e-13 has ulps of 1e-29, not of 1)
        const double origin = stiff_ ? std::log(step_tau0_) : step_tau0_;
        const double same = 64.0 * std::numeric_limits<double>::epsilon() *
                            std::max(std::abs(origin), std::abs(origin + step_h_)) / step_h_;
        for (auto& hk : hits)
            if (hk.first <= sigma_min + same) fired.push_back(hk.second);
        return sigma_min;
    }

    // Linear switching functions along the polynomial dense output are polynomials: isolate their first roots.
    void polynomial_hits(std::vector<std::pair<double, std::size_t>>& hits) {
        constexpr int deg = dopri5::DENSE_DEGREE;
        for (int m = 0; m <= deg; ++m)
            model_.preactivations(&coef_[m * p_], X_, n_, slopes_.data(), &hc_[m * NS_], scratch_.data());
        double g[deg + 1];
        for (std::size_t k = 0; k < NS_; ++k) {
            if (mode_[k] == sliding) continue;
            const double sign = mode_[k] == active ? -1.0 : 1.0;  // g > 0 means the switch left its side
            double abs_sum = 0.0;
            for (int m = 0; m <= deg; ++m) g[m] = sign * hc_[m * NS_ + k], abs_sum += std::abs(g[m]);
            if (g[0] + (abs_sum - std::abs(g[0])) < 0.0) continue;  // its maximum over the step is negative
            const double b = std::max(band(k, scale0_, floor0_), band(k, scale1_, floor1_));
            const double sigma = first_violation(g, deg, b);
            if (sigma >= 0.0) hits.emplace_back(sigma, k);
        }
    }

    // Deeper pre-activations are polynomials of higher degree along the dense output: isolate their first roots.
    void layered_hits(std::vector<std::pair<double, std::size_t>>& hits) {
        constexpr std::size_t deg = dopri5::DENSE_DEGREE;
        const std::size_t stride = model_.switch_poly_degree(deg) + 1;
        pc_.resize(NS_ * stride);
        model_.preactivation_polynomials(coef_.data(), deg, X_, n_, slopes_.data(), pc_.data());
        std::vector<double> g(stride);
        for (std::size_t k = 0; k < NS_; ++k) {
            if (mode_[k] == sliding) continue;
            const double sign = mode_[k] == active ? -1.0 : 1.0;
            for (std::size_t m = 0; m < stride; ++m) g[m] = sign * pc_[k * stride + m];
            const double b = std::max(band(k, scale0_, floor0_), band(k, scale1_, floor1_));
            const double sigma = first_violation(g.data(), static_cast<int>(stride - 1), b);
            if (sigma >= 0.0) hits.emplace_back(sigma, k);
        }
    }

    // first step fraction <= sigma_stop where a sliding multiplier s leaves (0,1), or -1
    double find_slide_exit(double sigma_stop, Result& res) {
        auto exit_margin = [&](double sigma, bool banded) {
            dopri5::dense_eval(coef_.data(), p_, sigma, ytmp_.data());
            field(step_tau(sigma), ytmp_.data(), ftmp_.data(), res);
            return slide_margin(ytmp_.data(), ftmp_.data(), banded);
        };
        constexpr int samples = 8;
        double lo = 0.0;
        for (int m = 1; m <= samples; ++m) {
            const double hi = sigma_stop * m / samples;
            if (exit_margin(hi, true) < 0.0) {
                // detected once s is clearly out of [0,1]; located where it left, if that is inside the bracket
                const double out = bisect_crossing([&](double x) { return -exit_margin(x, true); }, lo, hi);
                if (exit_margin(lo, false) >= 0.0 && exit_margin(out, false) < 0.0)
                    return bisect_crossing([&](double x) { return -exit_margin(x, false); }, lo, out);
                return out;
            }
            lo = hi;
        }
        return -1.0;
    }

    void handle_events(double tau, const std::vector<std::size_t>& fired, Result&) {
        std::vector<std::size_t> set(Z_.begin(), Z_.end());
        set.insert(set.end(), fired.begin(), fired.end());
        model_.preactivations(theta_.data(), X_, n_, slopes_.data(), h_.data(), scratch_.data());
        switch_scales(theta_.data(), scale0_, floor0_);
        // a deeper unit whose inputs are all exactly zero (scale 0) is no switch: its slope changes nothing
        for (std::size_t k = 0; k < NS_; ++k) {
            const double b = band(k, scale0_, floor0_);
            if (b > 0.0 && std::abs(h_[k]) <= b) set.push_back(k);
        }
        std::sort(set.begin(), set.end());
        set.erase(std::unique(set.begin(), set.end()), set.end());
        std::vector<std::uint8_t> before(fired.size());
        for (std::size_t a = 0; a < fired.size(); ++a) before[a] = mode_[fired[a]];
        project(set);
        for (std::size_t sw : fired) {
            refires_[sw] = same_time(last_fired_tau_[sw], tau) ? refires_[sw] + 1 : 0;
            last_fired_tau_[sw] = tau;
        }
        classify(tau, set);
        // A switch found again and left on its side, or found again at the very same t whatever side it was
        // given, is grazing its surface within rounding: widen its band so that rounding does not cut every
        // following step short (a real crossing soon exceeds any such band).
        for (std::size_t a = 0; a < fired.size(); ++a) {
            double& boost = band_boost_[fired[a]];
            const bool grazing = (mode_[fired[a]] == before[a] && before[a] != sliding) || refires_[fired[a]] > 0;
            boost = grazing ? std::min(boost * 16.0, 1e8) : 1.0;
        }
    }

    // equal to rounding (an event at the start of a step may land an ulp or two from where the last one was)
    static bool same_time(double a, double b) {
        return std::abs(a - b) <= 64.0 * std::numeric_limits<double>::epsilon() * std::abs(b);
    }

    // --- Runge-Kutta --------------------------------------------------------------------------------------
    // one Dormand-Prince step from theta_ (k_[0] = f there) into y1_; returns the scaled error norm
    double attempt_step(double tau, double h, Result& res) {
        using namespace dopri5;
        for (int s = 1; s < STAGES; ++s) {
            double* y = s == STAGES - 1 ? y1_.data() : ytmp_.data();
            for (std::size_t q = 0; q < p_; ++q) {
                double acc = 0.0;
                for (int r = 0; r < s; ++r) acc += A[s][r] * k_[r][q];
                y[q] = theta_[q] + h * acc;
            }
            field(tau + C[s] * h, y, k_[s].data(), res);
        }
        double err = 0.0;
        for (std::size_t q = 0; q < p_; ++q) {
            double e = 0.0;
            for (int s = 0; s < STAGES; ++s) e += E[s] * k_[s][q];
            const double sc = opt_.atol + opt_.rtol * std::max(std::abs(theta_[q]), std::abs(y1_[q]));
            err += (h * e / sc) * (h * e / sc);
        }
        return std::sqrt(err / static_cast<double>(p_));
    }

    // root mean square of v_q / (atol + rtol |theta_q|), without overflow when the ratios pass 1e154
    double scaled_rms(const double* v, const double* minus = nullptr) const {
        auto ratio = [&](std::size_t q) {
            return (v[q] - (minus ? minus[q] : 0.0)) / (opt_.atol + opt_.rtol * std::abs(theta_[q]));
        };
        double big = 0.0;
        for (std::size_t q = 0; q < p_; ++q) big = std::max(big, std::abs(ratio(q)));
        if (big == 0.0 || !std::isfinite(big)) return big;
        double sum = 0.0;
        for (std::size_t q = 0; q < p_; ++q) sum += (ratio(q) / big) * (ratio(q) / big);
        return big * std::sqrt(sum / static_cast<double>(p_));
    }

    // Hairer, Norsett & Wanner's starting step (II.4), guarded against overflow
    double initial_step(double tau, Result& res) {
        const double d0 = scaled_rms(theta_.data()), d1 = scaled_rms(k_[0].data());
        double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
        // in tau a trial step of more than a few units multiplies every weight by e^h0 and may overflow
        if (is_classification(opt_.loss)) h0 = std::min(h0, 1.0);
        double d2 = INFINITY;
        for (int attempt = 0; attempt < 64; ++attempt, h0 *= 0.01) {
            for (std::size_t q = 0; q < p_; ++q) ytmp_[q] = theta_[q] + h0 * k_[0][q];
            field(tau + h0, ytmp_.data(), ftmp_.data(), res);
            d2 = scaled_rms(ftmp_.data(), k_[0].data()) / h0;
            if (std::isfinite(d2)) break;
        }
        const double dm = std::max(d1, d2);
        const double h1 = dm <= 1e-15 ? std::max(1e-6, h0 * 1e-3) : std::pow(0.01 / dm, 1.0 / dopri5::ORDER);
        field(tau, theta_.data(), k_[0].data(), res);  // restore the buffers field() shares
        return std::min(100 * h0, h1);
    }

    // dense samples for the evaluation times up to tau_b (coef = nullptr: at the current state)
    void emit_evals(Result& res, std::size_t& next, double tau_b, const double* coef) {
        const double log_loss_now = logL_;  // the run reads it (stall rule): samples must not change it
        while (next < opt_.tau_eval.size() && opt_.tau_eval[next] <= tau_b) {
            const double te = opt_.tau_eval[next++];
            if (coef) dopri5::dense_eval(coef, p_, std::clamp(step_sigma(te), 0.0, 1.0), ytmp_.data());
            else std::copy(theta_.begin(), theta_.end(), ytmp_.begin());
            res.theta_eval.insert(res.theta_eval.end(), ytmp_.begin(), ytmp_.end());
            model_.forward(ytmp_.data(), X_, n_, slopes_.data(), out_.data(), scratch_.data());
            loss_weights(te);
            res.log_loss_eval.push_back(logL_);
        }
        logL_ = log_loss_now;
    }

    // the current step maps its fraction sigma in [0,1] to tau linearly, or in the stiff phase to log tau
    double step_tau(double sigma) const {
        // exp(log(tau0)) may round below tau0: an event at the very start must not move time back
        return stiff_ ? std::max(step_tau0_, std::exp(std::log(step_tau0_) + sigma * step_h_))
                      : step_tau0_ + sigma * step_h_;
    }
    double step_sigma(double tau) const {
        return stiff_ ? (std::log(tau) - std::log(step_tau0_)) / step_h_ : (tau - step_tau0_) / step_h_;
    }

    // --- the stiff phase: linearly implicit Euler with polynomial extrapolation (as in SEULEX), in u = log tau
    // d theta/du = tau F(tau, theta); the system is made autonomous by carrying u along.
    void field_u(double u, const double* th, double* out, Result& res) {
        const double tau = std::exp(u);
        field(tau, th, out, res);
        for (std::size_t q = 0; q < p_; ++q) out[q] *= tau;
    }

    // J_ = d f_u / d theta at (log tau, theta_). Off the sliding set it is exact: with G_i = y_i w(q_i),
    // dF/dtheta = sum_i -w_i sigma_i grad Phi_i grad Phi_i^T + sum_i G_i Hess Phi_i (sigma_i = d(-log w)/dq);
    // on it, central differences (the field is smooth while the modes are fixed).
    void jacobian_u(double tau, Result& res) {
        const std::size_t p = p_;
        J_.assign(p * p, 0.0);
        fp_.resize(p), fm_.resize(p);
        if (Z_.empty() && model_.has_hessian()) {
            ++res.n_rhs;
            model_.forward(theta_.data(), X_, n_, slopes_.data(), out_.data(), scratch_.data());
            loss_weights(tau);
            model_.add_weighted_hessian(theta_.data(), X_, n_, slopes_.data(), G_.data(), J_.data());
            std::vector<double> unit(n_ * c_, 0.0);
            for (std::size_t i = 0; i < n_ * c_; ++i) {
                unit[i] = 1.0;
                model_.vjp(theta_.data(), X_, n_, slopes_.data(), unit.data(), fp_.data(), scratch_.data());
                unit[i] = 0.0;
                const double q = Y_[i] * out_[i];
                const double sig = opt_.loss == Loss::exponential ? 1.0 : 1.0 / (1.0 + std::exp(-q));
                const double c = -std::abs(G_[i]) * sig;
                for (std::size_t r = 0; r < p; ++r)
                    for (std::size_t q2 = 0; q2 < p; ++q2) J_[r * p + q2] += c * fp_[r] * fp_[q2];
            }
            for (double& v : J_) v *= tau;
            return;
        }
        const double cbrt_eps = std::cbrt(std::numeric_limits<double>::epsilon());
        const double scale = norm2(theta_.data(), p) / std::sqrt(static_cast<double>(p));
        const double u0 = std::log(tau);
        for (std::size_t c = 0; c < p; ++c) {
            // the weights vary like e^{-q} with margins q ~ tau: perturb by a fraction of the scale 1/tau of theta
            const double delta = cbrt_eps * std::max(std::abs(theta_[c]), 1e-3 * scale + 1e-300) / std::max(1.0, tau);
            std::copy(theta_.begin(), theta_.end(), ytmp_.begin());
            ytmp_[c] = theta_[c] + delta;
            field_u(u0, ytmp_.data(), fp_.data(), res);
            ytmp_[c] = theta_[c] - delta;
            field_u(u0, ytmp_.data(), fm_.data(), res);
            for (std::size_t r = 0; r < p; ++r) J_[r * p + c] = (fp_[r] - fm_[r]) / (2.0 * delta);
        }
        // J <- P J, P the projection onto the sliding surfaces' tangent space: then every implicit substep of a
        // tangent field stays tangent, and the extrapolation does not see a drift off the surfaces
        const std::size_t k = Z_.size();
        const std::vector<double> Q = normal_gram(Z_);
        std::vector<double> rhs(k), lam;
        for (std::size_t c = 0; c < p; ++c) {
            for (std::size_t a = 0; a < k; ++a) {
                double v = 0.0;
                for (std::size_t r = 0; r < p; ++r) v += N_[a * p + r] * J_[r * p + c];
                rhs[a] = v;
            }
            solve_psd(Q, rhs, k, lam);
            for (std::size_t a = 0; a < k; ++a)
                for (std::size_t r = 0; r < p; ++r) J_[r * p + c] -= N_[a * p + r] * lam[a];
        }
    }

    double attempt_stiff_step(double tau, double H, Result& res) {
        const double u0 = std::log(tau);
        const std::size_t p = p_;
        // a retry after a rejection starts from the same state: the same Jacobian (by differences: 2p fields)
        if (!jacobian_current_) jacobian_u(tau, res), jacobian_current_ = true;
        fu_.resize(p);
        // every weight carries the factor dt/dtau = e^tau, so f(u, theta) = tau e^tau g(theta): df/du = (1 + tau) f
        field_u(u0, theta_.data(), fu_.data(), res);
        for (std::size_t r = 0; r < p; ++r) fu_[r] *= 1.0 + tau;
        // rows T[j] of the extrapolation tableau, j = 1..K substeps
        T_.assign(stiff_columns * stiff_columns * p, 0.0);
        auto T = [&](std::size_t j, std::size_t l) { return &T_[(j * stiff_columns + l) * p]; };
        std::vector<double> M(p * p), rhs(p);
        std::vector<std::size_t> piv;
        for (std::size_t j = 0; j < stiff_columns; ++j) {
            const std::size_t nsub = j + 1;
            const double hs = H / static_cast<double>(nsub);
            for (std::size_t r = 0; r < p; ++r)
                for (std::size_t c = 0; c < p; ++c) M[r * p + c] = (r == c ? 1.0 : 0.0) - hs * J_[r * p + c];
            lu_factor(M, p, piv);
            double* y = T(j, 0);
            std::copy(theta_.begin(), theta_.end(), y);
            for (std::size_t i = 0; i < nsub; ++i) {
                field_u(u0 + static_cast<double>(i) * hs, y, rhs.data(), res);
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
        const std::size_t K = stiff_columns - 1;
        const double* best = T(K, K);
        const double* lower = T(K, K - 1);
        // late in the run the direction is what is meant: errors relative to ||theta|| (components that tend to 0
        // would otherwise hold the step at the rounding of the linear solves)
        const double size = norm2(theta_.data(), p) / std::sqrt(static_cast<double>(p));
        double err = 0.0;
        for (std::size_t q = 0; q < p; ++q) {
            y1_[q] = best[q];
            const double sc = opt_.atol + opt_.rtol * std::max({std::abs(theta_[q]), std::abs(best[q]), 1e-3 * size});
            const double e = (best[q] - lower[q]) / sc;
            err += e * e;
        }
        // every substep is tangent to the sliding surfaces, so y1 ends on them but for the rounding of the linear
        // solves, which the stiffness amplifies: a step that ends off them by more than the tolerance is wrong
        // (its extrapolation error estimate can miss it, and projecting it back would break the conservation laws)
        if (!Z_.empty()) {
            model_.preactivations(y1_.data(), X_, n_, slopes_.data(), h_.data(), scratch_.data());
            for (std::size_t z : Z_) {
                model_.switch_normal(y1_.data(), X_, slopes_.data(), z, normal_.data());
                const double nn = norm2(normal_.data(), p);
                const double off = nn > 0.0 ? std::abs(h_[z]) / nn / (opt_.atol + opt_.rtol * size) : 0.0;
                err = std::max(err, static_cast<double>(p) * off * off);
            }
        }
        // nor may it move a conserved quantity by more than the tolerance (the error estimate of the extrapolation
        // can miss an error of 1e4 rtol when the problem is stiff)
        if (const std::size_t m = model_.n_balances()) {
            std::vector<double> b0(m), s0(m), b1(m), s1(m);
            model_.balances(theta_.data(), b0.data(), s0.data());
            model_.balances(y1_.data(), b1.data(), s1.data());
            for (std::size_t j = 0; j < m; ++j) {
                const double off = (b1[j] - b0[j]) / (opt_.atol * opt_.atol + opt_.rtol * std::max(s0[j], s1[j]));
                err = std::max(err, static_cast<double>(p) * off * off);
            }
        }
        // gradient flow never increases the loss: a step that does jumped to a wrong branch of the implicit map
        const double log_loss_before = log_loss_at(tau, theta_.data());
        if (log_loss_at(tau, y1_.data()) > log_loss_before + 1e-13 * std::max(1.0, std::abs(log_loss_before)))
            return 10.0;
        // the end derivative must agree with the secant: otherwise y1 is off the slow manifold by more than the
        // weights e^{tau - q} tolerate (this is what limits a run to log t of about 0.1 / rtol)
        field_u(u0, theta_.data(), fp_.data(), res);
        field_u(u0 + H, y1_.data(), fm_.data(), res);
        double mismatch = 0.0, secant = 0.0;
        for (std::size_t q = 0; q < p; ++q) {
            const double dy = y1_[q] - theta_[q];
            mismatch += (H * fm_[q] - dy) * (H * fm_[q] - dy);
            secant += dy * dy;
        }
        if (!(mismatch <= 0.25 * secant + opt_.atol * opt_.atol)) return std::max(10.0, 2.0 * err);
        return std::sqrt(err / static_cast<double>(p));
    }

    double log_loss_at(double tau, const double* th) {
        model_.forward(th, X_, n_, slopes_.data(), out_.data(), scratch_.data());
        loss_weights(tau);
        return logL_;
    }

    // cubic Hermite dense output of the stiff step in sigma, from the end values and derivatives
    void hermite_coefficients(Result& res) {
        const std::size_t p = p_;
        const double H = step_h_;
        // fp_, fm_ hold f_u at both ends from the accepted attempt_stiff_step
        for (std::size_t q = 0; q < p; ++q) {
            const double dy = y1_[q] - theta_[q], a = H * fp_[q], b = H * fm_[q];
            coef_[q] = theta_[q];
            coef_[p + q] = a;
            coef_[2 * p + q] = 3.0 * dy - 2.0 * a - b;
            coef_[3 * p + q] = -2.0 * dy + a + b;
            coef_[4 * p + q] = 0.0;
        }
        field(step_tau(1.0), y1_.data(), k_[6].data(), res);  // the FSAL slot the loop expects
    }

    const Model& model_;
    const double* X_;
    const double* Y_;
    std::size_t n_, p_, H_, NS_, c_;
    Options opt_;
    std::vector<double> theta_, y1_, ytmp_, ftmp_, normal_, coef_, out_, G_, logl_, scratch_, slopes_, hc_, h_, pc_;
    std::vector<double> k_[dopri5::STAGES];
    std::vector<std::uint8_t> mode_;
    std::vector<bool> branch_;  // sliding on a surface both one-sided fields leave
    std::vector<double> band_boost_;  // rounding band multipliers of grazing switches
    std::vector<double> last_fired_tau_;
    std::vector<std::size_t> refires_;  // how often each switch was found crossing again at the t of its last event
    std::vector<double> scale0_, scale1_, floor0_, floor1_;  // switch scales and band floors at a step's ends
    bool start_scales_known_ = false;  // scale0_/floor0_ already hold theta_'s (the last step's end)
    std::vector<std::size_t> Z_;
    std::vector<double> D_, Q_, s_, N_;
    double logL_ = 0.0;
    bool stiff_ = false;
    bool degenerate_ = false;  // the sliding surfaces are linearly dependent
    double step_tau0_ = 0.0, step_h_ = 0.0;
    std::vector<double> J_, T_, fp_, fm_, fu_;
    bool jacobian_current_ = false;  // J_ is the Jacobian at the current step's start
    static constexpr double stiff_from_tau = 30.0;          // t ~ 1e13
    static constexpr std::size_t stiff_max_params = 256;    // dense Jacobians beyond that cost more than they save
    static constexpr std::size_t stiff_columns = 5;         // extrapolation to order 5
    static constexpr double slide_exit_band = 1e-10;
    static constexpr std::size_t max_hull_units = 12;      // 2^12 corner fields per sample and field evaluation
    static constexpr double stall_rate = 1e-10;
    static constexpr double stall_wait = 1e3;              // in units of the starting time scale
    static constexpr double late_overflow_tau = 600.0;     // e^tau alone near the float64 limit
    std::vector<Event>* events_ = nullptr;
    Result* res_ = nullptr;  // the run's result: classification counts its field evaluations there
    std::vector<std::size_t> event_switch_;    // per logged event: its switch and its mode before
    std::vector<std::uint8_t> event_before_;
};

}  // namespace fastflow
