// Dead signal paths (docs/mathematics.md §2): a sample whose input to a hidden layer is zero (every unit of the
// layer below inactive or on its surface, slope 0; no bias) has every pre-activation of that layer and of those above
// exactly zero, whatever their slopes. They are no switches: no events, no sliding, no hull corners. They hold the
// sides they take when the units on surfaces below them grow from zero (the slopes the hull's corners that revive
// those units need). A unit below that revives alone brings them back on those sides, with no events of their own;
// one that revives while another below stays on its surface brings the first layer back as switches on their
// surfaces, decided with it (classify.hpp).
#pragma once
#include <cstddef>
#include <vector>

#include "switch_state.hpp"
#include "types.hpp"

namespace fastflow {

// Whether a unit of the layer below `layer` is active in one sample's slopes (n_hidden): below a dead path such a
// unit is at 0 and revives the path on the sides it gives
inline bool active_below(const Model& model, const double* sample_slopes, int layer) {
    for (std::size_t u = 0; u < model.n_hidden(); ++u)
        if (model.switch_layer(u) == layer - 1 && sample_slopes[u] == 1.0) return true;
    return false;
}

class DeadPaths {
public:
    DeadPaths(const Problem& pb, SwitchState& state) : pb_(pb), st_(state), sign_(pb.H) {}

    // the first dead hidden layer of sample i under the slopes in force (INT_MAX: none)
    int layer(std::size_t i) const {
        return pb_.model.first_dead_layer(pb_.X + i * pb_.model.d_in(), st_.slopes.data() + i * pb_.H);
    }
    bool above(std::size_t sw, int layer) const { return pb_.model.switch_layer(sw % pb_.H) >= layer; }

    // Sample i's units of hidden layers >= layer take the sides their pre-activations take when `seeds` (units of
    // the layer below) grow from 0 (no nonzero sign: inactive); with no seeds they keep their sides.
    void take_sides(const double* theta, std::size_t i, int layer, const std::vector<std::size_t>& seeds) {
        std::fill(sign_.begin(), sign_.end(), 0.0);
        if (!seeds.empty()) pb_.model.dead_path_signs(theta, static_cast<std::size_t>(layer), seeds, sign_.data());
        for (std::size_t u = 0; u < pb_.H; ++u) {
            const std::size_t sw = i * pb_.H + u;
            if (pb_.model.switch_layer(u) < layer) continue;
            const bool up = seeds.empty() ? st_.mode[sw] == Mode::active : sign_[u] > 0.0;
            st_.mode[sw] = up ? Mode::active : Mode::inactive;
            st_.slopes[sw] = up ? 1.0 : 0.0;
        }
    }

private:
    const Problem& pb_;
    SwitchState& st_;
    std::vector<double> sign_;
};

}  // namespace fastflow
