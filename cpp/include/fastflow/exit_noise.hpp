// Slide exits proven beyond the noise of the state's error (docs/mathematics.md §2).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "sliding.hpp"
#include "step_control.hpp"
#include "switch_state.hpp"
#include "types.hpp"
#include "velocity.hpp"

namespace fastflow {

// Which sliding switches provably leave their surfaces: their exit margins are below zero by more than a state
// error at the integration tolerance can move them. Near a minimum the multipliers are ratios of vanishing
// residuals, such an error moves them by O(1), and an exit within that noise is followed straight back onto the
// surface (chattering). The noise is the root mean square change of each margin over fixed sign patterns of
// that size.
class ExitNoise {
public:
    // An exit is proven beyond `multiple` noise levels, times `repeat` for each earlier end of the switch's slides:
    // a flow that came back to a surface it left is most likely settling onto it, its multiplier tending to a
    // bound, where the residual noise still lets an exit through now and then. Deeper nets count two ends at most:
    // there a dead path's seeds come back to their surfaces each time the path revives and dies, and a seed with
    // 13 ends was kept sliding against a normal speed of a third of the field, which sent the path's units across
    // at once, at one t, until the Zeno guard.
    static constexpr double multiple = 4.0, repeat = 4.0;
    static constexpr std::size_t counted_ends = 20, counted_ends_hull = 2;
    // An exit past `clear_by` times its threshold by the first `first_patterns` patterns is proven there: to undo
    // that, the other two would have to move its margin 127 times as much in squares as those did (at 4 times, 31
    // times let a noise exit through in 12,000 fuzz draws). Most exits of a large sweep are proven so, in 2 fields
    // instead of 4.
    static constexpr std::uint64_t first_patterns = 2;
    static constexpr double clear_by = 8.0;

    ExitNoise(const Problem& pb, const SwitchState& state, Sliding& sliding, Velocity& velocity)
        : pb_(pb), st_(state), sliding_(sliding), velocity_(velocity), y_(pb.p), F_(pb.p) {}

    // the switches of st_.Z (in its order) whose exit is proven at th (margins(): their margins there). The sum of
    // squared changes only grows with each pattern, so once the partial sums already put every negative margin
    // within its threshold, no exit can be proven and the remaining patterns are not evaluated.
    std::vector<bool> proven(double tau, const double* th) {
        margins(tau, th, m_);
        return prove(tau, th);
    }
    // as proven(), given the exact margins at th (those of the velocity there)
    std::vector<bool> proven(double tau, const double* th, const std::vector<double>& margins_at_th) {
        m_ = margins_at_th;
        return prove(tau, th);
    }

    const std::vector<double>& margins() const { return m_; }
    // how far below zero each margin had to be to be proven (a lower bound where the patterns stopped early)
    const std::vector<double>& thresholds() const { return thresholds_; }

private:
    // how many noise levels the margin of st_.Z[a] must be below zero for its exit to be proven
    double times(std::size_t a) const {
        const std::size_t most_ends = pb_.model.linear_switches() ? counted_ends : counted_ends_hull;
        const std::size_t ends = std::min(st_.slide_ends[st_.Z[a]], most_ends);
        return multiple * std::pow(repeat, static_cast<double>(ends));
    }

    std::vector<bool> prove(double tau, const double* th) {
        constexpr std::uint64_t patterns = 4;
        std::vector<bool> out(m_.size(), false);
        std::vector<double> sum(m_.size(), 0.0);
        // the margin an exit must be below, by the noise of the first `evaluated` patterns (of all of them: a
        // lower bound of the final one)
        auto threshold = [&](std::size_t a, std::uint64_t evaluated) {
            return times(a) * std::sqrt(sum[a] / static_cast<double>(evaluated));
        };
        auto provable = [&](std::size_t a) { return m_[a] < 0.0 && m_[a] < -threshold(a, patterns); };
        auto any_provable = [&] {
            for (std::size_t a = 0; a < m_.size(); ++a)
                if (provable(a)) return true;
            return false;
        };
        auto clear_after = [&](std::uint64_t evaluated) {
            for (std::size_t a = 0; a < m_.size(); ++a)
                if (provable(a) && !(m_[a] < -clear_by * threshold(a, evaluated))) return false;
            return true;
        };
        std::uint64_t evaluated = 0;
        while (evaluated < patterns && any_provable() && !(evaluated == first_patterns && clear_after(evaluated))) {
            ++evaluated;
            step_control::perturb_by_tolerance(th, pb_.p, pb_.opt.rtol, pb_.opt.atol, evaluated, y_.data());
            margins(tau, y_.data(), mp_);
            for (std::size_t a = 0; a < m_.size(); ++a) sum[a] += (mp_[a] - m_[a]) * (mp_[a] - m_[a]);
        }
        thresholds_.resize(m_.size());
        for (std::size_t a = 0; a < m_.size(); ++a) out[a] = provable(a), thresholds_[a] = threshold(a, patterns);
        return out;
    }

    void margins(double tau, const double* th, std::vector<double>& out) {
        const SlideSolution sol = velocity_(tau, th, F_.data());
        sliding_.margins(sol, st_.Z, th, st_.slopes.data(), F_.data(), false, out);
    }

    const Problem& pb_;
    const SwitchState& st_;
    Sliding& sliding_;
    Velocity& velocity_;
    std::vector<double> y_, F_, m_, mp_, thresholds_;
};

}  // namespace fastflow
