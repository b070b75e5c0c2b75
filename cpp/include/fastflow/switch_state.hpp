// The state of every switch that survives a step: its mode and slope, the sliding set, and what the event rules
// remember of its recent past.
#pragma once
#include <cstddef>
#include <vector>

#include "types.hpp"

namespace fastflow {

struct SwitchState {
    std::vector<Mode> mode;
    std::vector<double> slopes;           // the activation's derivative used for the switch: 0, 1, or free on Z
    std::vector<std::size_t> Z;           // the sliding switches, sorted
    std::vector<bool> branch;             // sliding on a surface both one-sided fields leave
    std::vector<double> band_boost;       // rounding band multipliers of grazing switches
    std::vector<double> last_fired_tau;
    std::vector<std::size_t> refires;     // how often each switch was found crossing again at the t of its last event
    std::vector<std::size_t> slide_ends;  // how many of each switch's slides have ended

    // one Integrator runs many trajectories (flow_many): each starts from a clean slate
    void reset(std::size_t switches) {
        mode.assign(switches, Mode::inactive);
        slopes.assign(switches, 0.0);
        Z.clear();
        branch.assign(switches, false);
        band_boost.assign(switches, 1.0);
        last_fired_tau.assign(switches, -1.0);
        refires.assign(switches, 0);
        slide_ends.assign(switches, 0);
    }
};

}  // namespace fastflow
