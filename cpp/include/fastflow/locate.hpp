// Event location: the earliest time in an accepted step where a switch leaves its side (the first root of its
// pre-activation along the step's polynomial dense output, isolated rigorously) or a slide ends.
#pragma once
#include <algorithm>
#include <cstddef>
#include <limits>
#include <utility>
#include <vector>

#include "branches.hpp"
#include "geometry.hpp"
#include "rk.hpp"
#include "roots.hpp"
#include "sliding.hpp"
#include "switch_state.hpp"
#include "time_map.hpp"
#include "types.hpp"

namespace fastflow {

class EventLocator {
public:
    EventLocator(const Problem& pb, const SwitchState& state, SwitchGeometry& geometry, Sliding& sliding,
                 Velocity& velocity, BranchWatch& branches, double* scratch)
        : pb_(pb), st_(state), geo_(geometry), sliding_(sliding), velocity_(velocity), branch_watch_(branches),
          scratch_(scratch),
          exit_noise_(pb, state, sliding, velocity), hc_((dopri5::DENSE_DEGREE + 1) * pb.NS), y_(pb.p), F_(pb.p) {}

    // the switch scales at the start of the next step are those at the end of this one (no event, no slide)
    void carry_end_scales() { std::swap(start_, end_), start_known_ = true; }
    void forget_start_scales() { start_known_ = false; }
    // the sliding switches whose exit (proven beyond the state's noise) is the last event found
    const std::vector<std::size_t>& slide_exits() const { return exits_; }
    // the sliding switches whose surface changes between attractive and repulsive at the last event found
    const std::vector<SurfaceTurn>& surface_turns() const { return turns_; }

    // The earliest event in the accepted step from theta to y1 (dense output coef, time map `step`) as a step
    // fraction (-1 if none); `fired` gets every switch whose event falls at that time (simultaneous events are
    // handled together). `slides_stay`: the step's stages found every slide's multipliers inside their bounds, so
    // no exit is looked for.
    double find(const double* theta, const double* y1, const double* coef, const StepMap& step,
                std::vector<std::size_t>& fired, bool slides_stay = false) {
        fired.clear();
        exits_.clear();
        if (pb_.NS == 0) return -1.0;
        std::vector<std::pair<double, std::size_t>> hits;
        std::vector<SurfaceTurn> turns;
        if (!start_known_) geo_.scales(theta, st_.slopes.data(), start_);
        start_known_ = false;
        geo_.scales(y1, st_.slopes.data(), end_);
        if (pb_.model.linear_switches()) polynomial_hits(coef, hits);
        else layered_hits(coef, hits);
        if (!st_.Z.empty()) branch_watch_.find(coef, dopri5::DENSE_DEGREE, turns);
        double sigma_min = 2.0;
        for (auto& hk : hits) sigma_min = std::min(sigma_min, hk.first);
        for (const SurfaceTurn& turn : turns) sigma_min = std::min(sigma_min, turn.sigma);
        const double sigma_exit =
            st_.Z.empty() || slides_stay ? -1.0 : slide_exit(coef, step, std::min(sigma_min, 1.0));
        if (sigma_exit >= 0.0 && sigma_exit < sigma_min) sigma_min = sigma_exit;
        else exits_.clear();
        turns_.clear();
        if (sigma_min > 1.0) return -1.0;
        // events within a few ulps of t of the earliest one are simultaneous (ulps of the step's own time
        // coordinate: a fast start at t ~ 1e-13 has ulps of 1e-29, not of 1)
        const double origin = step.origin();
        const double same = 64.0 * std::numeric_limits<double>::epsilon() *
                            std::max(std::abs(origin), std::abs(origin + step.h)) / step.h;
        for (auto& hk : hits)
            if (hk.first <= sigma_min + same) fired.push_back(hk.second);
        for (const SurfaceTurn& turn : turns)
            if (turn.sigma <= sigma_min + same) turns_.push_back(turn);
        return sigma_min;
    }

private:
    // the rounding band of switch k over the step: the wider of its ends'
    double band(std::size_t k) const {
        return std::max(start_.band(k, st_.band_boost[k]), end_.band(k, st_.band_boost[k]));
    }

    // Linear switching functions along the polynomial dense output are polynomials: isolate their first roots.
    void polynomial_hits(const double* coef, std::vector<std::pair<double, std::size_t>>& hits) {
        constexpr int deg = dopri5::DENSE_DEGREE;
        const std::size_t NS = pb_.NS;
        for (int m = 0; m <= deg; ++m)
            pb_.model.preactivations(&coef[m * pb_.p], pb_.X, pb_.n, st_.slopes.data(), &hc_[m * NS], scratch_);
        double g[deg + 1];
        for (std::size_t k = 0; k < NS; ++k) {
            if (st_.mode[k] == Mode::sliding) continue;
            const double sign = st_.mode[k] == Mode::active ? -1.0 : 1.0;  // g > 0 means the switch left its side
            double abs_sum = 0.0;
            for (int m = 0; m <= deg; ++m) g[m] = sign * hc_[m * NS + k], abs_sum += std::abs(g[m]);
            if (g[0] + (abs_sum - std::abs(g[0])) < 0.0) continue;  // its maximum over the step is negative
            const double sigma = first_violation(g, deg, band(k));
            if (sigma >= 0.0) hits.emplace_back(sigma, k);
        }
    }

    // Deeper pre-activations are polynomials of higher degree along the dense output: isolate their first roots.
    void layered_hits(const double* coef, std::vector<std::pair<double, std::size_t>>& hits) {
        constexpr std::size_t deg = dopri5::DENSE_DEGREE;
        const std::size_t stride = pb_.model.switch_poly_degree(deg) + 1;
        pc_.resize(pb_.NS * stride);
        pb_.model.preactivation_polynomials(coef, deg, pb_.X, pb_.n, st_.slopes.data(), pc_.data());
        std::vector<double> g(stride);
        for (std::size_t k = 0; k < pb_.NS; ++k) {
            if (st_.mode[k] == Mode::sliding) continue;
            const double sign = st_.mode[k] == Mode::active ? -1.0 : 1.0;
            for (std::size_t m = 0; m < stride; ++m) g[m] = sign * pc_[k * stride + m];
            const double sigma = first_violation(g.data(), static_cast<int>(stride - 1), band(k));
            if (sigma >= 0.0) hits.emplace_back(sigma, k);
        }
    }

    // first step fraction <= sigma_stop where a sliding multiplier s provably leaves (0,1), or -1; exits_ <- the
    // switches that leave
    double slide_exit(const double* coef, const StepMap& step, double sigma_stop) {
        auto exit_margin = [&](double sigma, bool banded) {
            dopri5::dense_eval(coef, pb_.p, sigma, y_.data());
            const SlideSolution sol = velocity_(step.tau(sigma), y_.data(), F_.data());
            return sliding_.margins(sol, st_.Z, y_.data(), st_.slopes.data(), F_.data(), banded, m_);
        };
        constexpr int samples = 8;
        double lo = 0.0;
        for (int m = 1; m <= samples; ++m) {
            const double hi = sigma_stop * m / samples;
            if (exit_margin(hi, true) < 0.0) {
                const std::vector<bool> proven = exit_noise_.proven(step.tau(hi), y_.data());
                for (std::size_t a = 0; a < proven.size(); ++a)
                    if (proven[a]) exits_.push_back(st_.Z[a]);
            }
            if (!exits_.empty()) {
                // located where s left [0,1] (beyond rounding), and where it left exactly if inside the bracket
                const double out = secant_crossing([&](double x) { return -exit_margin(x, true); }, lo, hi);
                if (exit_margin(lo, false) >= 0.0 && exit_margin(out, false) < 0.0)
                    return secant_crossing([&](double x) { return -exit_margin(x, false); }, lo, out);
                return out;
            }
            lo = hi;
        }
        return -1.0;
    }

    const Problem& pb_;
    const SwitchState& st_;
    SwitchGeometry& geo_;
    Sliding& sliding_;
    Velocity& velocity_;
    BranchWatch& branch_watch_;
    double* scratch_;
    SwitchScales start_, end_;  // at the step's ends
    bool start_known_ = false;  // start_ already holds the step start's (the last step's end)
    std::vector<std::size_t> exits_;
    std::vector<SurfaceTurn> turns_;
    ExitNoise exit_noise_;
    std::vector<double> hc_, pc_, y_, F_, m_;
};

}  // namespace fastflow
