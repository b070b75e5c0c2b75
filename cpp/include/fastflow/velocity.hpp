// The velocity the steps evaluate (docs/mathematics.md §2).
#pragma once
#include <algorithm>
#include <cstddef>
#include <vector>

#include "field.hpp"
#include "sliding.hpp"
#include "switch_state.hpp"
#include "types.hpp"

namespace fastflow {

// The velocity of the flow with the current modes: the smooth field, made tangent on the sliding set.
class Velocity {
public:
    Velocity(Field& field, Sliding& sliding, const SwitchState& state) : field_(field), sliding_(sliding), st_(state) {}

    // (the solution is kept until the next call)
    const SlideSolution& operator()(double tau, const double* th, double* F) {
        field_.evaluate(tau, th, st_.slopes.data(), F);
        if (st_.Z.empty()) return none_;
        const SlideSolution& sol = sliding_.add(st_.Z, th, st_.slopes.data(), F);
        if (watching_ && sliding_.margins(sol, st_.Z, th, st_.slopes.data(), F, true, margins_) < 0.0)
            exit_taus_.push_back(tau);
        return sol;
    }

    // Exit screening: the times of the velocities evaluated in between (a step's stages, in any phase) that found
    // a slide's multiplier out of its bounds, free since each solves the sliding set anyway
    void watch_exits() { watching_ = true, exit_taus_.clear(); }
    std::vector<double> exit_taus() {
        watching_ = false;
        return exit_taus_;
    }

private:
    Field& field_;
    Sliding& sliding_;
    const SwitchState& st_;
    bool watching_ = false;
    std::vector<double> exit_taus_, margins_;
    const SlideSolution none_;  // off the sliding set
};

}  // namespace fastflow
