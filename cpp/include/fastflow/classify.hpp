// Classification of switches on their surfaces: which leave, to which side, and which slide. (The "affect" of an
// event; locate.hpp finds its time.)
#pragma once
#include <algorithm>
#include <cstddef>
#include <limits>
#include <utility>
#include <vector>

#include "dead_paths.hpp"
#include "event_log.hpp"
#include "exit_noise.hpp"
#include "geometry.hpp"
#include "linalg.hpp"
#include "sliding.hpp"
#include "switch_state.hpp"
#include "time_map.hpp"
#include "types.hpp"
#include "velocity.hpp"

namespace fastflow {

class Classifier {
public:
    Classifier(const Problem& pb, SwitchState& state, SwitchGeometry& geometry, Sliding& sliding, Velocity& velocity,
               EventLog& log)
        : pb_(pb), st_(state), geo_(geometry), sliding_(sliding), velocity_(velocity), log_(log),
          exit_noise_(pb, state, sliding, velocity), dead_(pb, state), F_(pb.p), normal_(pb.p) {}

    // Decide the mode of every switch in `set` (all on their surfaces, at theta) from the minimal-norm element of
    // the Clarke subdifferential over the box s in [0,1]^set: interior s slides; otherwise the pair leaves to the
    // side the velocity points to. A pair that leaves takes that side's slope, which changes the field the others
    // see, so the box problem is solved again over the undecided ones until no more leave. Slides that this ends
    // go on unless their exit is proven (see ExitNoise) or `exits` (found by the locator) holds them. Records the
    // changes.
    void classify(double tau, const double* theta, std::vector<std::size_t> set,
                  std::vector<std::size_t> exits = {}) {
        std::sort(set.begin(), set.end());
        set.erase(std::unique(set.begin(), set.end()), set.end());
        if (!pb_.model.linear_switches()) with_shared_surfaces(theta, set, exits);
        std::sort(set.begin(), set.end(), [this](std::size_t a, std::size_t b) {
            const std::size_t ua = a % pb_.H, ub = b % pb_.H;
            return ua != ub ? ua < ub : a < b;
        });
        std::vector<Mode> old(set.size());
        for (std::size_t a = 0; a < set.size(); ++a) old[a] = st_.mode[set[a]], st_.slopes[set[a]] = 0.0;
        dead_paths_.clear();
        if (!pb_.model.linear_switches()) drop_dead_paths(set, old);
        std::vector<std::size_t> rest;
        for (std::size_t z : st_.Z)
            if (std::find(set.begin(), set.end(), z) == set.end()) rest.push_back(z);
        std::vector<std::size_t> undecided = set;
        decide(tau, theta, undecided, rest, exits);
        // A dead path that a unit below it revives (decided active) is a layer of switches on their surfaces, each
        // free to slide or take a side: decided again, all together (their slopes change the field below them).
        while (revive_paths(set, old, undecided, rest)) {
            for (std::size_t sw : set) st_.slopes[sw] = 0.0;
            undecided = set;
            decide(tau, theta, undecided, rest, exits);
        }
        std::vector<std::size_t>& Z = st_.Z;
        Z = rest;
        Z.insert(Z.end(), undecided.begin(), undecided.end());
        // A switch decided at a bound whose surface contains the sliding set's intersection (its normal lies in
        // their span: a duplicated or parallel sample) stays on its surface as long as they slide: it slides too.
        // Deeper nets: not a slide whose exit the locator proved (curved surfaces: the span holds to first order,
        // and the hull's rates to its error; kept, the same exit was found again at one t until the Zeno guard).
        if (!Z.empty()) {
            const std::vector<std::size_t> sliding = Z;  // companions add nothing to the span
            const bool blocks = pb_.model.unit_block_size() > 0, hull = !pb_.model.linear_switches();
            Normals nm;
            if (!blocks) nm = geo_.normals(theta, st_.slopes.data(), sliding);
            for (std::size_t sw : set)
                if (std::find(undecided.begin(), undecided.end(), sw) == undecided.end() &&
                    !(hull && std::find(exits.begin(), exits.end(), sw) != exits.end()) &&
                    (blocks ? geo_.in_unit_span(sw, sliding) : geo_.in_span(theta, st_.slopes.data(), sw, nm)))
                    undecided.push_back(sw), Z.push_back(sw);
        }
        for (std::size_t sw : undecided) st_.mode[sw] = Mode::sliding, st_.slopes[sw] = 0.0;
        std::sort(Z.begin(), Z.end());
        path_sides(theta);
        keep_unproven_exits(tau, theta, set, old, exits);
        path_sides(theta);
        for (std::size_t a = 0; a < set.size(); ++a) {
            const Mode mode = st_.mode[set[a]];
            if (old[a] == Mode::sliding && mode != Mode::sliding) ++st_.slide_ends[set[a]];
            // (leave mode: the flag marks a switch the leave rule took off its surface, for this log only)
            const bool left = pb_.opt.leave_branches && mode != old[a] && mode != Mode::sliding;
            // logged from the mode the log last gave it: a pair on a dead path changed sides unlogged
            if ((log_.record(tau, log_.last_logged(set[a]), mode, set[a]) || left) && st_.branch[set[a]])
                log_.branch(tau, set[a]);
            if (pb_.opt.leave_branches) st_.branch[set[a]] = false;
        }
        // a path that a unit below holds active is revived: its sides hold from here on, so they are logged (a unit
        // of it that later crosses back was otherwise logged as never having left its side before the path died)
        for (const auto& [i, layer] : dead_paths_)
            if (active_below(pb_.model, &st_.slopes[i * pb_.H], layer))
                for (std::size_t u = 0; u < pb_.H; ++u)
                    if (pb_.model.switch_layer(u) >= layer)
                        log_.record(tau, log_.last_logged(i * pb_.H + u), st_.mode[i * pb_.H + u], i * pb_.H + u);
    }

    // Leave mode (branches.hpp): the switches of `set` put on the sides `up` gives (true: active), off the sliding
    // set; records the changes
    void put(double tau, const std::vector<std::size_t>& set, const std::vector<bool>& up) {
        for (std::size_t a = 0; a < set.size(); ++a) {
            const Mode old = st_.mode[set[a]];
            if (old == Mode::sliding) ++st_.slide_ends[set[a]];
            take_side(set[a], up[a]);
            st_.Z.erase(std::remove(st_.Z.begin(), st_.Z.end(), set[a]), st_.Z.end());
            log_.record(tau, old, st_.mode[set[a]], set[a]);
        }
    }

private:
    // Switches on dead signal paths (dead_paths.hpp) leave `set` (with their old modes) and the sliding set
    // (dead_paths_ <- the paths)
    void drop_dead_paths(std::vector<std::size_t>& set, std::vector<Mode>& old) {
        std::vector<std::size_t> samples;
        for (std::size_t sw : set) samples.push_back(sw / pb_.H);
        for (std::size_t sw : st_.Z) samples.push_back(sw / pb_.H);
        std::sort(samples.begin(), samples.end());
        samples.erase(std::unique(samples.begin(), samples.end()), samples.end());
        for (std::size_t i : samples) {
            const int layer = dead_.layer(i);
            if (layer != std::numeric_limits<int>::max()) dead_paths_.emplace_back(i, layer);
        }
        auto is_dead = [&](std::size_t sw) {
            for (const auto& [i, layer] : dead_paths_)
                if (sw / pb_.H == i && dead_.above(sw, layer)) return true;
            return false;
        };
        std::size_t kept = 0;
        for (std::size_t a = 0; a < set.size(); ++a)
            if (!is_dead(set[a])) set[kept] = set[a], old[kept++] = old[a];
        set.resize(kept), old.resize(kept);
        st_.Z.erase(std::remove_if(st_.Z.begin(), st_.Z.end(), is_dead), st_.Z.end());
    }

    // The paths of dead_paths_ that a unit below decided active revives while another unit there stays on its
    // surface: their first layer's units join `set`, and the layers above stay dead. Whether any did. (One unit
    // growing alone from its surface gives the layer above pre-activations proportional to it: path_sides gives
    // their sides exactly. With several on their surfaces the sides depend on how fast each grows, and the layer's
    // slopes change the field of those units: they are decided together.)
    bool revive_paths(std::vector<std::size_t>& set, std::vector<Mode>& old, const std::vector<std::size_t>& undecided,
                      const std::vector<std::size_t>& rest) {
        auto holds = [](const std::vector<std::size_t>& v, std::size_t sw) {
            return std::find(v.begin(), v.end(), sw) != v.end();
        };
        bool revived_any = false;
        std::vector<std::pair<std::size_t, int>> still;
        for (const auto& [i, layer] : dead_paths_) {
            bool revived = false, above = false;
            std::size_t on_surfaces = 0;
            std::vector<std::size_t> hull_units;  // the sample's, with the layer back
            for (std::size_t u = 0; u < pb_.H; ++u) {
                const std::size_t sw = i * pb_.H + u;
                const int l = pb_.model.switch_layer(u);
                if (l == layer - 1) {
                    revived = revived || st_.slopes[sw] == 1.0;
                    on_surfaces += st_.slopes[sw] == 1.0 || holds(undecided, sw) || holds(rest, sw);
                }
                if (l == layer || holds(set, sw) || holds(rest, sw)) hull_units.push_back(u);
                above = above || l == layer + 1;
            }
            // (past the hull's limits the sides stand for the layer)
            if (!revived || on_surfaces < 2 || !sliding_.hull().fits(hull_units)) {
                still.emplace_back(i, layer);
                continue;
            }
            revived_any = true;
            for (std::size_t u = 0; u < pb_.H; ++u)
                if (pb_.model.switch_layer(u) == layer) {
                    const std::size_t sw = i * pb_.H + u;
                    set.push_back(sw), old.push_back(st_.mode[sw]);
                }
            if (above) still.emplace_back(i, layer + 1);
        }
        dead_paths_ = still;
        return revived_any;
    }

    // The dead paths' sides, from the slopes in force below them (every velocity of the decision sees the sides the
    // flow will take): those that the units below on their surfaces give when they grow from zero, the ones decided
    // active if any (they revive the path), else the sliding ones.
    void path_sides(const double* theta) {
        for (const auto& [i, layer] : dead_paths_) {
            std::vector<std::size_t> up, level;
            for (std::size_t u = 0; u < pb_.H; ++u) {
                const std::size_t sw = i * pb_.H + u;
                if (pb_.model.switch_layer(u) != layer - 1) continue;
                if (st_.slopes[sw] == 1.0) up.push_back(u);
                else if (std::find(st_.Z.begin(), st_.Z.end(), sw) != st_.Z.end()) level.push_back(u);
            }
            dead_.take_sides(theta, i, layer, up.empty() ? level : up);
        }
    }

    // Deeper nets: an exit the locator proved is one of every switch on its surface (SwitchGeometry::shared_surface):
    // exits <- with them, among `set` and the slides
    void with_shared_surfaces(const double* theta, const std::vector<std::size_t>& set,
                              std::vector<std::size_t>& exits) const {
        if (exits.empty()) return;
        std::vector<std::size_t> among = set;
        among.insert(among.end(), st_.Z.begin(), st_.Z.end());
        const std::size_t proven = exits.size();
        for (std::size_t a = 0; a < proven; ++a)
            for (std::size_t sw : geo_.shared_surface(theta, st_.slopes.data(), exits[a], among))
                if (std::find(exits.begin(), exits.end(), sw) == exits.end()) exits.push_back(sw);
    }

    // The slides of `set` that the decision ended, other than `exits`, go on while their multipliers with them
    // kept are out of [0,1] by no more than the noise of the state's error: near a minimum the box problem reads
    // multipliers that the state's error moves by O(1), and the flow would come straight back (chattering). (A
    // multiplier inside [0,1] that the box problem put at its bound ends its slide: it reached the bound here.)
    void keep_unproven_exits(double tau, const double* theta, const std::vector<std::size_t>& set,
                             const std::vector<Mode>& old, const std::vector<std::size_t>& exits) {
        std::vector<std::size_t> ended;
        std::vector<Mode> decided;
        for (std::size_t a = 0; a < set.size(); ++a)
            if (old[a] == Mode::sliding && st_.mode[set[a]] != Mode::sliding &&
                std::find(exits.begin(), exits.end(), set[a]) == exits.end())
                ended.push_back(set[a]), decided.push_back(st_.mode[set[a]]);
        if (ended.empty()) return;
        for (std::size_t sw : ended) st_.mode[sw] = Mode::sliding, st_.slopes[sw] = 0.0, st_.Z.push_back(sw);
        std::sort(st_.Z.begin(), st_.Z.end());
        const std::vector<bool> proven = exit_noise_.proven(tau, theta);
        std::vector<std::size_t> Z;
        for (std::size_t a = 0; a < st_.Z.size(); ++a) {
            const auto at = std::find(ended.begin(), ended.end(), st_.Z[a]);
            if (at == ended.end() || (exit_noise_.margins()[a] < 0.0 && !proven[a])) Z.push_back(st_.Z[a]);
            else take_side(*at, decided[static_cast<std::size_t>(at - ended.begin())] == Mode::active);
        }
        st_.Z = Z;
    }

    void take_side(std::size_t sw, bool up) {
        st_.mode[sw] = up ? Mode::active : Mode::inactive;
        st_.slopes[sw] = up ? 1.0 : 0.0;
    }

    // The undecided switches' modes, by rounds of leaves: two-layer networks solve the box problem again after
    // each leave (box_rounds), deeper ones let the switch the hull's point moves fastest leave first (hull_rounds);
    // those left undecided slide (see classify). A side taken in an early round reads the field before later leaves
    // (e.g. two samples of one neuron, each turning the other's velocity around; in a deeper net it sent switches
    // straight back, and the locator fired them again at one t until the Zeno guard): every side is checked
    // against the final field, and a switch that it sends back across is decided again with the others fixed.
    void decide(double tau, const double* theta, std::vector<std::size_t>& undecided,
                const std::vector<std::size_t>& rest, const std::vector<std::size_t>& exits) {
        const std::vector<std::size_t> all = undecided;
        for (std::size_t pass = 0; pass <= all.size(); ++pass) {
            if (pb_.model.linear_switches()) box_rounds(tau, theta, undecided, rest);
            else if (hull_rounds(tau, theta, undecided, rest, exits)) return;  // revive_paths decides again
            const std::vector<std::size_t> turned = sent_back(tau, theta, all, undecided, rest);
            if (turned.empty()) return;
            for (std::size_t sw : turned) st_.slopes[sw] = 0.0, undecided.push_back(sw);
        }
    }

    // The switches of `all` decided to a side (not in `undecided`) that the final field, with `rest` and
    // `undecided` sliding, sends back across their surfaces
    std::vector<std::size_t> sent_back(double tau, const double* theta, const std::vector<std::size_t>& all,
                                       const std::vector<std::size_t>& undecided,
                                       const std::vector<std::size_t>& rest) {
        st_.Z = rest;
        st_.Z.insert(st_.Z.end(), undecided.begin(), undecided.end());
        if (!pb_.model.linear_switches()) std::sort(st_.Z.begin(), st_.Z.end());  // the hull groups Z by sample
        path_sides(theta);
        velocity_(tau, theta, F_.data());
        const double fnorm = norm2(F_.data(), pb_.p);
        std::vector<std::size_t> turned;
        for (std::size_t sw : all) {
            if (std::find(undecided.begin(), undecided.end(), sw) != undecided.end()) continue;
            double tol;
            const double dh = geo_.normal_velocity(theta, st_.slopes.data(), sw, F_.data(), fnorm, normal_.data(), tol);
            if (st_.mode[sw] == Mode::active ? dh < -tol : dh > tol) turned.push_back(sw);
        }
        return turned;
    }

    void box_rounds(double tau, const double* theta, std::vector<std::size_t>& undecided,
                    const std::vector<std::size_t>& rest) {
        const std::size_t rounds = undecided.size(), p = pb_.p;
        for (std::size_t round = 0; round <= rounds && !undecided.empty(); ++round) {
            st_.Z = rest;
            velocity_(tau, theta, F_.data());
            const std::size_t k = undecided.size();
            sliding_.slope_directions(undecided, theta, st_.slopes.data());
            const std::vector<double>& D = sliding_.directions();
            const std::size_t len = sliding_.row_length();
            const double unit = sliding_.unit();  // of D and its Gram matrix
            std::vector<double> b;
            sliding_.directions_dot(F_.data(), b);
            for (double& v : b) v *= unit;
            const std::vector<double> s = sliding_.gram().box(b, norm2(F_.data(), p) * unit);
            sliding_.add_directions(s, F_.data());
            const double fnorm = norm2(F_.data(), p);
            std::vector<int> side(k, -1);  // -1 slides, 0 inactive, 1 active
            for (std::size_t a = 0; a < k; ++a) {
                const std::size_t sw = undecided[a];
                double tol;
                const double dh =
                    geo_.normal_velocity(theta, st_.slopes.data(), sw, F_.data(), fnorm, normal_.data(), tol);
                const double nd = dot(normal_.data(), &D[a * len], len) / unit;  // d(dh)/ds (on the same block)
                // box_qp puts variables at their bounds to its tolerance; s within the exit band of a bound is at
                // it, for every switch alike (a slide whose exit was just found, s out of [0,1] by more than the
                // band right after, ends there; and one switch's tie must not be decided unlike another's)
                const double at_bound = sliding_.exit_band(sw / pb_.H);
                if (s[a] > at_bound && s[a] < 1.0 - at_bound) {
                    // both one-sided fields point away from the surface the minimal-norm solution keeps
                    const bool away = dh - s[a] * nd < -tol && dh + (1.0 - s[a]) * nd > tol;
                    if (!(pb_.opt.leave_branches && (away || st_.branch[sw]))) {
                        st_.branch[sw] = away;
                        continue;
                    }
                    // leave mode (also a slide whose turn to repulsive was found, flagged by the integrator): to
                    // the bound s is nearer, as at a tangential exit (leaves_up). Gradient descent leaves there:
                    // chattering across an attracting surface it spends a fraction s of its steps on the active
                    // side, whose field returns it at (1 - s) |nd| against s |nd| on the other, and near the turn it
                    // is caught on the slower side, whose field then points away at min(s, 1 - s) nd.
                    st_.branch[sw] = true;
                    side[a] = s[a] >= 0.5 ? 1 : 0;
                    continue;
                }
                side[a] = leaves_up(tau, sw, s[a], dh, nd, tol);
            }
            // A switch leaving to the side opposite its bound (repulsive) changes the field every other decision
            // of this round was read from: then it alone is decided, and the box problem is solved again.
            std::size_t flip = k;
            for (std::size_t a = 0; a < k && flip == k; ++a)
                if (side[a] >= 0 && (side[a] == 1) != (s[a] >= 0.5)) flip = a;
            std::vector<std::size_t> still;
            for (std::size_t a = 0; a < k; ++a) {
                if (side[a] < 0 || (flip < k && a != flip)) {
                    still.push_back(undecided[a]);
                    continue;
                }
                take_side(undecided[a], side[a] == 1);
            }
            const bool settled = still.size() == undecided.size();
            undecided = still;
            if (settled) break;
        }
    }

    // The side of a switch whose multiplier s is at a bound: 1 active, 0 inactive, -1 it slides. The box problem's
    // KKT conditions give it, s -> 1 active and s -> 0 inactive on an attractive surface (nd < 0), swapped on a
    // repulsive one: off tangency this is sign(dh). A switch whose normal velocity is rounding noise (it reaches its
    // surface tangentially, or a slide ends there) keeps the one-sided field of its bound (the minimal-norm
    // element), unless it was put there at this very t already and the dense output went straight across: then
    // the curvature decides, and it goes across; and if it comes straight back from there too, it slides.
    // Both one-sided normal velocities of one sign: it crosses, whatever s the box solver left (its slope may
    // barely move the field, e.g. a sample whose loss weight underflows: s is then arbitrary). Both sending it back
    // across, it slides: an s within the exit band of a bound (a slide whose sample's residual nearly vanishes)
    // still holds it on its surface, and the bound's side would be left at once, at one t, again and again.
    int leaves_up(double tau, std::size_t sw, double s, double dh, double nd, double tol) const {
        const double v_inactive = dh - s * nd, v_active = dh + (1.0 - s) * nd;
        if (v_inactive > tol && v_active < -tol) return -1;
        bool up;
        if (std::abs(dh) <= tol) {
            // (a count left from an earlier t is stale: a slide may end here without its switch firing)
            const std::size_t refires = same_time(st_.last_fired_tau[sw], tau) ? st_.refires[sw] : 0;
            if (refires >= 2) return -1;  // put on both sides at this t and back each time: it slides
            // A slide ending on a repulsive surface (nd > 0) goes across: its multiplier s = -n.F0 / nd leaves
            // [0, 1] where n.F0 = -s nd > 0 (s < 0) or n.F1 = (1 - s) nd < 0 (s > 1), its own bound's field
            // pointing across (rounding used to send it there first, and the next event or refire back)
            const bool across = st_.mode[sw] == Mode::sliding && nd > tol;
            up = refires == 1 ? st_.mode[sw] == Mode::inactive : (s >= 0.5) != across;
        } else if (std::min(v_inactive, v_active) > tol || std::max(v_inactive, v_active) < -tol) {
            up = dh > 0.0;
        } else {
            up = (s >= 0.5) != (nd > 0.0);
        }
        return up ? 1 : 0;
    }

    // Deep networks: the minimal-norm element of the hull over the undecided (and sliding) switches; a switch it
    // moves off its surface beyond that element's error leaves to that side, the one moving fastest first (its slope
    // changes the hull) among those with none of their sample's leaving below them, until the rest stay, or until
    // the next to leave would be a dead path's second seed: then it stays on its surface, and the rounds end (true)
    // for the path to be revived and decided again (second_seed). (Corner fields far larger than the element leave
    // Wolfe's answer off by percents; read as exits, those errors re-fire the switch at one t, each side sending it
    // back.) A slide whose exit the locator proved (`exits`) leaves beyond 1e-9 of the field whatever that error: at
    // rounding it is the square root of a duality gap of order eps, ~1e-8 of the field, there one solve and not the
    // next, and a slide kept by it was found leaving again at once, at one t.
    //
    // Leave mode: when the rounds end on a surface entered repelling after a unit was held back by one leaving below
    // it, they are run again with no unit held back (the fastest of all leaves first), and that outcome is taken if
    // it has no such surface. A lower unit's rate is read with the units above it on their surfaces too, where the
    // gradient through them is cut: gradient descent lets the faster upper unit take its side, and the slide below
    // it goes on (deep problem 394 of benchmarks/branches.py's seed 1, docs/mathematics.md).
    bool hull_rounds(double tau, const double* theta, std::vector<std::size_t>& undecided,
                     const std::vector<std::size_t>& rest, const std::vector<std::size_t>& exits) {
        if (!pb_.opt.leave_branches) return hull_rounds_once(tau, theta, undecided, rest, exits, false);
        const std::vector<std::size_t> start = undecided;
        const std::vector<Mode> modes = picked(st_.mode, start);
        const std::vector<bool> branch = picked(st_.branch, start);
        bool revive = hull_rounds_once(tau, theta, undecided, rest, exits, false);
        if (!(entered_branch_ && held_back_)) return revive;
        const auto restore = [&] {
            undecided = start;
            for (std::size_t a = 0; a < start.size(); ++a) {
                st_.mode[start[a]] = modes[a], st_.branch[start[a]] = branch[a];
                st_.slopes[start[a]] = 0.0;
            }
        };
        restore();
        revive = hull_rounds_once(tau, theta, undecided, rest, exits, true);
        if (!entered_branch_) return revive;
        restore();
        return hull_rounds_once(tau, theta, undecided, rest, exits, false);
    }

    bool hull_rounds_once(double tau, const double* theta, std::vector<std::size_t>& undecided,
                          const std::vector<std::size_t>& rest, const std::vector<std::size_t>& exits,
                          bool hold_none) {
        entered_branch_ = held_back_ = false;
        while (!undecided.empty()) {
            st_.Z = rest;
            st_.Z.insert(st_.Z.end(), undecided.begin(), undecided.end());
            std::sort(st_.Z.begin(), st_.Z.end());
            path_sides(theta);
            const double error = velocity_(tau, theta, F_.data()).error;
            const double fnorm = norm2(F_.data(), pb_.p);
            std::vector<double> rate(undecided.size(), 0.0);
            for (std::size_t a = 0; a < undecided.size(); ++a) {
                geo_.normal(theta, st_.slopes.data(), undecided[a], normal_.data());
                const double nn = norm2(normal_.data(), pb_.p);
                const bool exit = std::find(exits.begin(), exits.end(), undecided[a]) != exits.end();
                if (nn > 0.0) rate[a] = dot(normal_.data(), F_.data(), pb_.p) / nn;
                if (std::abs(rate[a]) <= std::max(1e-9 * fnorm, exit ? 0.0 : error)) rate[a] = 0.0;
            }
            // A unit's normal holds the slopes of its sample's units below it: while one of those leaves, read at
            // its surface (slope 0), the rate of the unit above is not the one it will have
            auto below_leaves = [&](std::size_t a) {
                for (std::size_t b = 0; b < undecided.size(); ++b)
                    if (rate[b] != 0.0 && undecided[b] / pb_.H == undecided[a] / pb_.H &&
                        pb_.model.switch_layer(undecided[b] % pb_.H) < pb_.model.switch_layer(undecided[a] % pb_.H))
                        return true;
                return false;
            };
            std::size_t leaving = undecided.size();
            double fastest = 0.0;
            for (std::size_t a = 0; a < undecided.size(); ++a) {
                if (std::abs(rate[a]) <= fastest) continue;
                if (!hold_none && below_leaves(a)) {
                    held_back_ = true;
                    continue;
                }
                fastest = std::abs(rate[a]), leaving = a;
            }
            if (leaving == undecided.size()) {
                const std::vector<std::size_t> left = branches_on_hull(theta, undecided, fnorm);
                if (left.empty()) return false;
                for (std::size_t sw : left) undecided.erase(std::find(undecided.begin(), undecided.end(), sw));
                continue;
            }
            if (rate[leaving] > 0.0 && second_seed(undecided[leaving])) return true;
            // the switches on its surface go with it (the hull gave them one slope)
            for (std::size_t sw : geo_.shared_surface(theta, st_.slopes.data(), undecided[leaving], undecided)) {
                take_side(sw, rate[leaving] > 0.0);
                undecided.erase(std::find(undecided.begin(), undecided.end(), sw));
            }
        }
        return false;
    }

    // values[sw] for each switch sw of `set`
    template <class T>
    static std::vector<T> picked(const std::vector<T>& values, const std::vector<std::size_t>& set) {
        std::vector<T> out;
        for (std::size_t sw : set) out.push_back(values[sw]);
        return out;
    }

    // The switches the hull rounds leave on their surfaces (`undecided`, with the hull at theta just solved) flag
    // whether both their one-sided fields point away, as box_rounds does: with the switches sharing their surface
    // (SwitchGeometry::shared_surface), crossed together, read as one (Hull::shared_slope), where each is alone
    // in its sample (BranchWatch::find_on_hull says why). Leave mode takes the first such surface that is entered
    // (or one whose turn the integrator flagged) off instead, all its switches to one side, and returns them for the
    // hull to be solved again without them.
    std::vector<std::size_t> branches_on_hull(const double* theta, const std::vector<std::size_t>& undecided,
                                              double fnorm) {
        for (std::size_t sw : undecided) {
            const std::vector<std::size_t> group = geo_.shared_surface(theta, st_.slopes.data(), sw, undecided);
            if (!sliding_.hull().slope_is_local(group)) continue;
            double tol;
            const double dh = geo_.normal_velocity(theta, st_.slopes.data(), sw, F_.data(), fnorm, normal_.data(), tol);
            const Hull::Slope hs = sliding_.hull().shared_slope(group, theta, st_.slopes.data());
            // the one-sided normal velocities, the group crossed together (s nd: the members' summed s_b nd_b)
            const double v_inactive = dh - hs.s * hs.nd, v_active = dh + (1.0 - hs.s) * hs.nd;
            const bool away = v_inactive < -tol && v_active > tol;
            if (pb_.opt.leave_branches && (away || st_.branch[sw])) {
                // a flagged turn whose sides both point one way beyond rounding (a shared surface whose members'
                // slides pull against each other) crosses to that side, no branch; one still attracting slides on
                const bool attracts = v_inactive > tol && v_active < -tol;
                const bool crosses = std::min(v_inactive, v_active) > tol || std::max(v_inactive, v_active) < -tol;
                // (a flagged turn with both sides within rounding is left too, by s: the watch found nd past its
                // noise, which is 0 where the sample's output dies with the switch off, so nd is barely past 0
                // there; kept, the slide was never looked at again, and gradient descent left: fuzz draw 6:13)
                if (attracts) {
                    st_.branch[sw] = false;
                    continue;
                }
                // to the slower side (box_rounds says why), entered or turned
                const bool up = crosses ? v_active > 0.0 : std::abs(v_active) < std::abs(v_inactive);
                for (std::size_t member : group) st_.branch[member] = !crosses, take_side(member, up);
                entered_branch_ = entered_branch_ || away;
                return group;
            }
            st_.branch[sw] = away;
        }
        return {};
    }

    // Whether switch sw, leaving up, would be the second unit active at 0 below one of dead_paths_. The hull gives
    // its active corner the sides the first alone gives the path; with both growing they depend on how fast each
    // does, and read as the first's they sent both straight back, at one t, until the Zeno guard. With the first
    // active and sw on its surface, revive_paths decides them again with the path's first layer as switches.
    bool second_seed(std::size_t sw) const {
        const std::size_t i = sw / pb_.H;
        for (const auto& [sample, layer] : dead_paths_)
            if (sample == i && pb_.model.switch_layer(sw % pb_.H) == layer - 1 &&
                active_below(pb_.model, &st_.slopes[i * pb_.H], layer))
                return true;
        return false;
    }

    const Problem& pb_;
    SwitchState& st_;
    SwitchGeometry& geo_;
    Sliding& sliding_;
    Velocity& velocity_;
    EventLog& log_;
    ExitNoise exit_noise_;
    DeadPaths dead_;
    std::vector<std::pair<std::size_t, int>> dead_paths_;  // (sample, first dead layer) of the decision
    std::vector<double> F_, normal_;  // the field and a normal at theta, within one decision
    // the last hull rounds (leave mode): they took a surface entered repelling off; they held a unit back
    bool entered_branch_ = false, held_back_ = false;
};

}  // namespace fastflow
