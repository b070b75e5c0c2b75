// Event location: the earliest time in an accepted step where a switch leaves its side (the first root of its
// pre-activation along the step's polynomial dense output, isolated rigorously) or a slide ends.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <limits>
#include <numeric>
#include <utility>
#include <vector>

#include "branches.hpp"
#include "dop853.hpp"
#include "exit_noise.hpp"
#include "geometry.hpp"
#include "rk.hpp"
#include "roots.hpp"
#include "sliding.hpp"
#include "switch_state.hpp"
#include "time_map.hpp"
#include "types.hpp"
#include "velocity.hpp"

namespace fastflow {

class EventLocator {
public:
    EventLocator(const Problem& pb, const SwitchState& state, SwitchGeometry& geometry, Sliding& sliding,
                 Velocity& velocity, BranchWatch& branches, double* scratch)
        : pb_(pb), st_(state), geo_(geometry), sliding_(sliding), velocity_(velocity), branch_watch_(branches),
          scratch_(scratch),
          exit_noise_(pb, state, sliding, velocity), hc_((rk::max_dense_degree + 1) * pb.NS), y_(pb.p), F_(pb.p) {}

    // the switch scales at the start of the next step are those at the end of this one, for the samples computed
    // so far (no event, no slide)
    void carry_end_scales() { std::swap(start_, end_), start_known_ = true; }
    void forget_start_scales() { start_known_ = false; }
    // the sliding switches whose exit (proven beyond the state's noise) is the last event found
    const std::vector<std::size_t>& slide_exits() const { return exits_; }
    // the sliding switches whose surface changes between attractive and repulsive at the last event found
    const std::vector<SurfaceTurn>& surface_turns() const { return turns_; }

    // The earliest event in the accepted step from theta to y1 (dense output coef of that degree, time map `step`)
    // as a step fraction (-1 if none); `fired` gets every switch whose event falls at that time (simultaneous events
    // are handled together). `exit_hints`: the step fractions where its stages found a slide's multiplier out of its
    // bounds; exits are looked for on the dense output there (none: the slides stay).
    double find(const double* theta, const double* y1, const double* coef, int degree, const StepMap& step,
                std::vector<std::size_t>& fired, std::vector<double> exit_hints) {
        fired.clear();
        deg_ = degree;
        exits_.clear();
        if (pb_.NS == 0) return -1.0;
        std::vector<SurfaceTurn> turns;
        hits_.clear();
        if (!start_known_) start_.forget(pb_.n);
        start_known_ = false;
        end_.forget(pb_.n);
        start_.at = theta, end_.at = y1;
        if (pb_.model.unit_block_size() > 0) {
            if (deg_ == dopri5::DENSE_DEGREE) screened_hits<dopri5::DENSE_DEGREE>(coef, hits_);
            else screened_hits<dop853::DENSE_DEGREE>(coef, hits_);
        } else if (pb_.model.linear_switches()) {
            polynomial_hits(coef, hits_);
        } else {
            layered_hits(coef, hits_);
        }
        if (!st_.Z.empty()) {
            branch_watch_.find(coef, deg_, turns);
            branch_watch_.find_on_hull(coef, deg_, geo_, sliding_, turns);
            branch_watch_.pole_hints(coef, deg_, exit_hints);
        }
        double sigma_min = 2.0;
        for (auto& hk : hits_) sigma_min = std::min(sigma_min, hk.first);
        for (const SurfaceTurn& turn : turns) sigma_min = std::min(sigma_min, turn.sigma);
        const double sigma_exit =
            exit_hints.empty() ? -1.0 : slide_exit(coef, step, std::min(sigma_min, 1.0), std::move(exit_hints));
        if (sigma_exit >= 0.0 && sigma_exit < sigma_min) sigma_min = sigma_exit;
        else exits_.clear();
        turns_.clear();
        if (sigma_min > 1.0) return -1.0;
        // events within a few ulps of t of the earliest one are simultaneous (ulps of the step's own time
        // coordinate: a fast start at t ~ 1e-13 has ulps of 1e-29, not of 1)
        const double origin = step.origin();
        const double same = 64.0 * std::numeric_limits<double>::epsilon() *
                            std::max(std::abs(origin), std::abs(origin + step.h)) / step.h;
        for (auto& hk : hits_)
            if (hk.first <= sigma_min + same) fired.push_back(hk.second);
        for (const SurfaceTurn& turn : turns)
            if (turn.sigma <= sigma_min + same) turns_.push_back(turn);
        return sigma_min;
    }

private:
    // The switch scales at one end of the step (at `at`), of the samples whose switches may cross
    struct EndScales {
        SwitchScales scales;
        std::vector<bool> known;  // per sample
        const double* at = nullptr;
        std::vector<std::size_t> missing;  // need()'s workspace

        void forget(std::size_t n) { known.assign(n, false); }
        void need(const SwitchGeometry& geo, const double* slopes, const std::vector<std::size_t>& samples) {
            missing.clear();
            for (std::size_t i : samples)
                if (!known[i]) missing.push_back(i), known[i] = true;
            if (!missing.empty()) geo.sample_scales(at, slopes, missing, scales);
        }
    };

    // the rounding band of switch k over the step: the wider of its ends' (their scales known)
    double band(std::size_t k) const {
        return std::max(start_.scales.band(k, st_.band_boost[k]), end_.scales.band(k, st_.band_boost[k]));
    }

    // the ends' scales of these samples
    void need_scales(const std::vector<std::size_t>& samples) {
        start_.need(geo_, st_.slopes.data(), samples);
        end_.need(geo_, st_.slopes.data(), samples);
    }
    void need_all_scales() {
        std::vector<std::size_t> all(pb_.n);
        std::iota(all.begin(), all.end(), std::size_t{0});
        need_scales(all);
    }

    // Block models (two-layer nets): h_k(sigma) = n_k . w_j(sigma) moves by at most |n_k| sum_m>=1 |c_mj| over the
    // step (Cauchy-Schwarz on the dense output's coefficients), so only the switches within that reach of their
    // surface get their polynomial; the rest cannot cross (nor would first_violation find them).
    template <int deg>
    void screened_hits(const double* coef, std::vector<std::pair<double, std::size_t>>& hits) {
        const std::size_t H = pb_.H, p = pb_.p, len = pb_.model.unit_block_size();
        pb_.model.preactivations(coef, pb_.X, pb_.n, st_.slopes.data(), hc_.data(), scratch_);  // at the start
        std::vector<double>& reach = reach_;
        reach.assign(H, 0.0);
        for (std::size_t j = 0; j < H; ++j) {
            for (int m = 1; m <= deg; ++m) reach[j] += norm2(&coef[m * p + pb_.model.unit_block_offset(j)], len);
            reach[j] *= 1.0 + 1e-12;  // the rounding of the norms and of the dot products bounded
        }
        // First the switches the reach allows: a flag per switch, in a pass over k = i H + j walked as (i, j) that
        // the compiler vectorizes (a division, or a call it cannot see through, per switch would cost more than the
        // test itself), then the raised flags read eight at a time (a few in a hundred are raised)
        const Mode* mode = st_.mode.data();
        const double *h0 = hc_.data(), *normal_norm = geo_.normal_norms(), *unit_reach = reach.data();
        reachable_.resize(pb_.NS);
        std::uint8_t* flag = reachable_.data();
        for (std::size_t i = 0; i < pb_.n; ++i) {
            const std::size_t k0 = i * H;
            for (std::size_t j = 0; j < H; ++j) {
                const double start = mode[k0 + j] == Mode::active ? -h0[k0 + j] : h0[k0 + j];  // > 0: it left its side
                flag[k0 + j] = (mode[k0 + j] != Mode::sliding) & (start + normal_norm[k0 + j] * unit_reach[j] > 0.0);
            }
        }
        std::vector<std::size_t>& near = near_;  // then those whose polynomials reach their surfaces, with them
        std::vector<double>& polys = polys_;
        near.clear(), polys.clear();
        auto look = [&](std::size_t k) {
            const double sign = mode[k] == Mode::active ? -1.0 : 1.0;
            const double* row = pb_.model.fixed_normal(pb_.X, k);
            const double* w = &coef[pb_.model.unit_block_offset(k % H)];
            double g[deg + 1] = {sign * h0[k]};
            for (std::size_t l = 0; l < len; ++l)  // the dot products with the coefficients, each summed in order
                for (int m = 1; m <= deg; ++m) g[m] += row[l] * w[m * p + l];
            double abs_sum = 0.0;
            for (int m = 1; m <= deg; ++m) g[m] *= sign, abs_sum += std::abs(g[m]);
            if (g[0] + abs_sum < 0.0) return;  // its maximum over the step is negative
            near.push_back(k);
            polys.insert(polys.end(), g, g + deg + 1);
        };
        std::size_t k = 0;
        for (; k + 8 <= pb_.NS; k += 8) {
            std::uint64_t eight;
            std::memcpy(&eight, flag + k, 8);
            if (eight == 0) continue;
            for (std::size_t q = 0; q < 8; ++q)
                if (flag[k + q]) look(k + q);
        }
        for (; k < pb_.NS; ++k)
            if (flag[k]) look(k);
        std::vector<std::size_t>& samples = near_samples_;
        samples.clear();
        for (std::size_t k : near)
            if (samples.empty() || samples.back() != k / H) samples.push_back(k / H);
        need_scales(samples);
        for (std::size_t a = 0; a < near.size(); ++a) {
            const double sigma = first_violation(&polys[a * (deg + 1)], deg, band(near[a]));
            if (sigma >= 0.0) hits.emplace_back(sigma, near[a]);
        }
    }

    // Linear switching functions along the polynomial dense output are polynomials: isolate their first roots.
    void polynomial_hits(const double* coef, std::vector<std::pair<double, std::size_t>>& hits) {
        const int deg = deg_;
        const std::size_t NS = pb_.NS;
        need_all_scales();
        for (int m = 0; m <= deg; ++m)
            pb_.model.preactivations(&coef[m * pb_.p], pb_.X, pb_.n, st_.slopes.data(), &hc_[m * NS], scratch_);
        double g[rk::max_dense_degree + 1];
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
        const int deg = deg_;
        const std::size_t stride = pb_.model.switch_poly_degree(deg) + 1;
        pc_.resize(pb_.NS * stride);
        need_all_scales();
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
    // switches that leave. Looked for at the hints (in order; one at the start looks a little later, and one past
    // sigma_stop at sigma_stop), and located between the last hint where s was inside and the first where it left:
    // by the margins of the leaving switches alone (another slide's margin may be noise out of its bounds, e.g. at
    // a surface's turn, where its multiplier is a ratio of two vanishing terms). A slide whose exit a hint's proof
    // found within the noise is proven again at a later hint only once its margin is past that proof's threshold:
    // the noise of nearby states is about the same, and a flow settling onto a surface, its multiplier at the
    // bound, has stage after stage out of bounds.
    double slide_exit(const double* coef, const StepMap& step, double sigma_stop, std::vector<double> hints) {
        std::vector<bool> leaving;  // in st_.Z's order: the exits found so far
        std::vector<double> unproven(st_.Z.size(), 0.0);  // the thresholds of the exits found within the noise
        // whether these margins may prove an exit: out of bounds (banded) and past any threshold found
        auto may_exit = [&](const std::vector<double>& banded, const std::vector<double>& exact) {
            for (std::size_t a = 0; a < banded.size(); ++a)
                if (banded[a] < 0.0 && exact[a] <= -unproven[a]) return true;
            return false;
        };
        // every slide's exact and banded margins at sigma, from one field (kept: a hint is looked at again as a
        // bracket end, and its exact margins start the exit's proof)
        std::deque<SlideMargins> seen;
        auto margins_at = [&](double sigma) -> const SlideMargins& {
            for (const SlideMargins& m : seen)
                if (m.sigma == sigma) return m;
            rk::dense_eval(coef, deg_, pb_.p, sigma, y_.data());
            const SlideSolution sol = velocity_(step.tau(sigma), y_.data(), F_.data());
            SlideMargins m{sigma, {}, {}};
            sliding_.margins(sol, st_.Z, y_.data(), st_.slopes.data(), F_.data(), false, m.exact);
            sliding_.margins(sol, st_.Z, y_.data(), st_.slopes.data(), F_.data(), true, m.banded);
            seen.push_back(std::move(m));
            return seen.back();
        };
        // the least exact and banded margin (of the leaving switches, once known) at sigma
        auto exit_margins = [&](double sigma) {
            const SlideMargins& m = margins_at(sigma);
            auto least = [&](const std::vector<double>& margins) {
                double out = INFINITY;
                for (std::size_t a = 0; a < margins.size(); ++a)
                    if (leaving.empty() || leaving[a]) out = std::min(out, margins[a]);
                return out;
            };
            return std::make_pair(least(m.exact), least(m.banded));
        };
        constexpr double first_look = 1.0 / 8.0;  // of sigma_stop
        for (double& hint : hints) hint = hint > 0.0 ? std::min(hint, sigma_stop) : first_look * sigma_stop;
        std::sort(hints.begin(), hints.end());
        hints.erase(std::unique(hints.begin(), hints.end()), hints.end());
        double lo = 0.0;
        for (double hi : hints) {
            const SlideMargins& at_hi = margins_at(hi);
            if (may_exit(at_hi.banded, at_hi.exact)) {
                rk::dense_eval(coef, deg_, pb_.p, hi, y_.data());
                const std::vector<bool> proven = exit_noise_.proven(step.tau(hi), y_.data(), at_hi.exact);
                for (std::size_t a = 0; a < proven.size(); ++a) {
                    if (proven[a]) exits_.push_back(st_.Z[a]);
                    else if (at_hi.exact[a] < 0.0) unproven[a] = exit_noise_.thresholds()[a];
                }
                if (!exits_.empty()) leaving = proven;
            }
            if (!exits_.empty()) {
                // Where s left [0,1]: exactly if it was inside at lo, else where it left beyond rounding. The dense
                // output holds the state to the tolerance only, so the step fraction is sought to rtol, on the side
                // where s has left (there the box problem puts it at its bound). The field is continuous at an exit,
                // so an error in its time moves the state by the square of it.
                const auto [exact_lo, banded_lo] = exit_margins(lo);
                const bool exact = exact_lo >= 0.0;
                const auto [exact_hi, banded_hi] = exit_margins(hi);
                auto outside = [&](double x) {
                    const auto [exact_x, banded_x] = exit_margins(x);
                    return -(exact ? exact_x : banded_x);
                };
                return secant_crossing(outside, lo, -(exact ? exact_lo : banded_lo), hi,
                                       -(exact ? exact_hi : banded_hi), pb_.opt.rtol);
            }
            lo = hi;
        }
        return -1.0;
    }

    struct SlideMargins {
        double sigma;
        std::vector<double> exact, banded;
    };

    const Problem& pb_;
    const SwitchState& st_;
    SwitchGeometry& geo_;
    Sliding& sliding_;
    Velocity& velocity_;
    BranchWatch& branch_watch_;
    double* scratch_;
    EndScales start_, end_;     // at the step's ends
    bool start_known_ = false;  // start_ already holds the step start's (the last step's end)
    int deg_ = dopri5::DENSE_DEGREE;  // of the current step's dense output
    std::vector<std::size_t> exits_;
    std::vector<SurfaceTurn> turns_;
    ExitNoise exit_noise_;
    std::vector<double> hc_, pc_, y_, F_;
    std::vector<std::uint8_t> reachable_;  // screened_hits' first pass: a flag per switch
    // kept storage of find()'s and screened_hits' workspace
    std::vector<std::pair<double, std::size_t>> hits_;
    std::vector<double> reach_, polys_;
    std::vector<std::size_t> near_, near_samples_;
};

}  // namespace fastflow
