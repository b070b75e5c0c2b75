// Filippov sliding: the velocity on an intersection of switching surfaces is the minimal-norm element of the
// Clarke subdifferential (docs/mathematics.md §2).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "block_gram.hpp"
#include "field.hpp"
#include "geometry.hpp"
#include "linalg.hpp"
#include "loss.hpp"
#include "minnorm.hpp"
#include "step_control.hpp"
#include "switch_state.hpp"
#include "types.hpp"

namespace fastflow {

// The multipliers s of the sliding switches (two-layer networks), or degenerate: the surfaces are dependent, or
// the network is deeper (no multipliers), and exits are read off the normal velocities. error: a bound on the
// distance of the velocity from the exact minimal-norm element (the hull's Wolfe duality gap, square-rooted).
struct SlideSolution {
    std::vector<double> s;
    bool degenerate = false;
    double error = 0.0;
};

class Sliding {
public:
    // a sample's hull units outside its largest layer, whose 2^k choices its linear minimisation goes through
    static constexpr std::size_t max_hull_enumeration = 12;

    // (bits of the units in the largest layer, bits of the others) of a sample's hull units (by position); throws
    // past max_hull_enumeration, or past 64 units
    std::pair<std::uint64_t, std::uint64_t> split_by_layer(const std::vector<std::size_t>& units) const {
        const auto bits = units.size() <= 64 ? layer_bits(units) : std::pair<std::uint64_t, std::uint64_t>{};
        if (units.size() > 64 || !enumerable(bits.second))
            throw std::runtime_error("more than " + std::to_string(max_hull_enumeration) +
                                     " units of one sample outside its largest layer (or 64 in all) slide at once "
                                     "in a deep network");
        return bits;
    }
    // whether a sample's hull over these units is within the limits above
    bool hull_fits(const std::vector<std::size_t>& units) const {
        return units.size() <= 64 && enumerable(layer_bits(units).second);
    }

    Sliding(const Problem& pb, Field& field)
        : pb_(pb), field_(field), block_(pb.model.unit_block_size()), normals_(block_ > 0 ? pb.H : 0) {}

    // rows D_a = dF/ds_a for the switches of `set`, and their Gram matrix (as directions(), gram()), both in
    // unit(): times the field's weight unit
    void slope_directions(const std::vector<std::size_t>& set, const double* th, const double* slopes) {
        const std::size_t k = set.size(), p = pb_.p;
        D_.resize(k * p);
        unit_ = field_.weight_unit();
        for (std::size_t a = 0; a < k; ++a)
            pb_.model.slope_direction(th, pb_.X, slopes, set[a], field_.weights(), &D_[a * p]);
        if (unit_ != 1.0)
            for (double& v : D_) v *= unit_;
        if (block_ == 0) return gram_.assign(k, p, nullptr, [&](std::size_t a) { return &D_[a * p]; });
        block_gram(set, th);
    }
    const std::vector<double>& directions() const { return D_; }
    double unit() const { return unit_; }

    // A sample's dead path above sliding units (dead_paths.hpp): its slopes are not the sides it holds but those of
    // the piece of the path that the corner's active seeds (its sliding units in the layer below) open
    struct DeadFan {
        std::uint64_t seeds = 0;  // bits of the sample's hull units that feed the path (0: no such path)
        int layer = 0;
        std::unordered_map<std::uint64_t, std::vector<std::vector<double>>> pieces;  // by active seed bits
    };
    // A deeper net's last hull (from add()): per sliding sample its units, and the corral of its minimal-norm point,
    // each point tagged with the corner taken in every sample (bit a: the slope of units[a]; from bit 32, in a
    // sample below a dead path (at most 12 units), the path's piece)
    struct HullFace {
        std::vector<std::size_t> samples;
        std::vector<std::vector<std::size_t>> units;
        std::vector<DeadFan> fans;  // per sample
        Corral<std::vector<std::size_t>> corral;
    };
    const HullFace& last_hull() const { return face_; }
    // slopes (n x n_hidden) <- the slopes in force with the corners of the last hull's corral point j
    void corner_slopes(std::size_t j, const double* slopes, std::vector<double>& out) const {
        out.assign(slopes, slopes + pb_.n * pb_.H);
        for (std::size_t g = 0; g < face_.samples.size(); ++g)
            sample_corner_slopes(g, face_.corral.tags[j][g], &out[face_.samples[g] * pb_.H]);
    }
    // Deeper nets, a switch z of the last hull that slides alone in its sample (hull_slope_is_local): its slope's
    // mean s over the corral, and the derivative of its normal velocity in that slope, nd = n_z . dF/ds_z (loss
    // weights G, n x d_out), so that its one-sided normal velocities are dh + (1 - s) nd and dh - s nd (the two-layer
    // multiplier's, branches.hpp). A sample's field is multilinear in its slopes and n_z holds none of z's own, so nd
    // is one evaluation at the slopes in force, whatever the corral. scale: |n_z| |G_i dPhi_i/dtheta|, of which nd's
    // errors are a part (nd itself vanishes with the signal z passes on, at a turn). length: |n_z|. All 0: z is not
    // in the hull.
    struct HullSlope {
        double s = 0.0, nd = 0.0, scale = 0.0, length = 0.0;
    };
    HullSlope hull_slope(std::size_t z, const double* th, const double* slopes, const double* G) {
        const std::size_t i = z / pb_.H, p = pb_.p, d = pb_.model.d_in();
        const auto g = static_cast<std::size_t>(
            std::find(face_.samples.begin(), face_.samples.end(), i) - face_.samples.begin());
        if (g == face_.samples.size()) return {};
        HullSlope out;
        const Corral<std::vector<std::size_t>>& corral = face_.corral;
        for (std::size_t j = 0; j < corral.tags.size(); ++j)
            out.s += corral.weights[j] * static_cast<double>(corral.tags[j][g] & 1U);
        normal_.resize(p), direction_.resize(p);
        pb_.model.switch_normal(th, pb_.X, slopes, z, normal_.data());
        pb_.model.slope_direction(th, pb_.X, slopes, z, G, direction_.data());
        out.nd = dot(normal_.data(), direction_.data(), p);
        pb_.model.vjp(th, pb_.X + i * d, 1, slopes + i * pb_.H, G + i * pb_.c, direction_.data(), field_.scratch());
        out.length = norm2(normal_.data(), p);
        out.scale = out.length * norm2(direction_.data(), p);
        return out;
    }
    // whether z slides alone in its sample and opens no dead path: hull_slope's condition (with others, nd would be
    // averaged over the corral's corners, which are not unique where the hull is degenerate)
    bool hull_slope_is_local(std::size_t z) const {
        const auto g = static_cast<std::size_t>(
            std::find(face_.samples.begin(), face_.samples.end(), z / pb_.H) - face_.samples.begin());
        return g == face_.samples.size() || (face_.units[g].size() == 1 && face_.fans[g].seeds == 0);
    }
    // ... for every switch of a shared surface (shared_slope's condition)
    bool hull_slope_is_local(const std::vector<std::size_t>& shared) const {
        return std::all_of(shared.begin(), shared.end(), [this](std::size_t z) { return hull_slope_is_local(z); });
    }
    // A surface several switches share (SwitchGeometry::shared_surface), crossed by all at once: its nd is the sum
    // of theirs in the first one's normal (each times |n_first| / |n_b|, at th: the normals' lengths move along a
    // step, and ratios held from its start made a sum of rates of opposite signs cross 0 off the true crossing,
    // one turn after another closing in on it), its s their nd-weighted mean slope
    HullSlope shared_slope(const std::vector<std::size_t>& shared, const double* th, const double* slopes,
                           const double* G) {
        HullSlope out;
        double active = 0.0, first = 0.0;
        for (std::size_t b = 0; b < shared.size(); ++b) {
            const HullSlope one = hull_slope(shared[b], th, slopes, G);
            if (b == 0) first = one.length;
            const double ratio = one.length > 0.0 ? first / one.length : 0.0;
            out.nd += one.nd * ratio, out.scale += one.scale * ratio;
            active += one.s * one.nd * ratio;
        }
        out.s = out.nd != 0.0 ? active / out.nd : 0.0;
        return out;
    }
    // ... at the loss weights of the last field evaluation
    HullSlope shared_slope(const std::vector<std::size_t>& shared, const double* th, const double* slopes) {
        return shared_slope(shared, th, slopes, field_.weights());
    }

    const BlockGram& gram() const { return gram_; }
    // a new trajectory: no hull to start Wolfe from (see hull())
    void forget_hull() { hull_Z_.clear(); }

    // F (the smooth field at th) <- its minimal-norm Clarke combination over the sliding set Z.
    // Two-layer networks: s minimises |F0 + D s| without bounds, which makes F tangent to every surface in Z.
    // When the surfaces are dependent (e.g. a neuron pinned at w = 0) s is not unique: take the box-constrained
    // minimiser, whose velocity is the minimal-norm subgradient, and watch the normal velocities for the exit.
    SlideSolution add(const std::vector<std::size_t>& Z, const double* th, const double* slopes, double* F) {
        if (!pb_.model.linear_switches()) return hull(Z, th, slopes, F);
        const std::size_t k = Z.size(), p = pb_.p;
        // block models: rows restricted to their unit's block (the rest is zero), and the solve told the blocks
        const std::size_t len = block_ > 0 ? block_ : p;
        std::vector<std::size_t> offset(k, 0);
        if (block_ > 0) {
            B_.resize(k * len);
            unit_ = field_.weight_unit();
            for (std::size_t a = 0; a < k; ++a) {
                offset[a] = pb_.model.unit_block_offset(Z[a] % pb_.H);
                pb_.model.slope_direction_block(th, pb_.X, Z[a], field_.weights(), &B_[a * len]);
            }
            if (unit_ != 1.0)
                for (double& v : B_) v *= unit_;
            block_gram(Z, th);
        } else {
            slope_directions(Z, th, slopes);
        }
        const std::vector<double>& rows = block_ > 0 ? B_ : D_;
        std::vector<double> b(k);
        for (std::size_t a = 0; a < k; ++a) b[a] = -dot(&rows[a * len], F + offset[a], len) * unit_;
        SlideSolution sol;
        sol.degenerate = gram_.solve(b, sol.s) < k;
        if (sol.degenerate) {
            for (double& v : b) v = -v;
            sol.s = gram_.box(b, norm2(F, p) * unit_);
        }
        for (std::size_t a = 0; a < k; ++a)
            for (std::size_t q = 0; q < len; ++q) F[offset[a] + q] += sol.s[a] * rows[a * len + q] / unit_;
        return sol;
    }

    // how far s may stray out of [0,1] by rounding at sample i (of the last field evaluation)
    double exit_band(std::size_t i) const {
        const std::size_t at = i * pb_.c;
        return slide_exit_band(pb_.opt.loss, field_.outputs() + at, pb_.Y + at, field_.weights() + at, pb_.c);
    }

    // per switch of Z, >= 0 while it can stay on its surface (sol and F from the field at th); returns the least
    double margins(const SlideSolution& sol, const std::vector<std::size_t>& Z, const double* th,
                   const double* slopes, const double* F, bool banded, std::vector<double>& out) {
        out.resize(Z.size());
        if (!sol.degenerate) {
            // s is only known to rounding of the terms that cancel in it: a slide ends once s is clearly out
            for (std::size_t a = 0; a < Z.size(); ++a)
                out[a] = std::min(sol.s[a], 1.0 - sol.s[a]) + (banded ? exit_band(Z[a] / pb_.H) : 0.0);
        } else {
            // a normal velocity within the velocity's own error is no exit
            const double tol = std::max(1e-9 * norm2(F, pb_.p), sol.error);
            std::vector<double> n(pb_.p);
            for (std::size_t a = 0; a < Z.size(); ++a) {
                pb_.model.switch_normal(th, pb_.X, slopes, Z[a], n.data());
                out[a] = tol * norm2(n.data(), pb_.p) - std::abs(dot(n.data(), F, pb_.p));
            }
        }
        return out.empty() ? INFINITY : *std::min_element(out.begin(), out.end());
    }

private:
    static constexpr unsigned piece_shift = 32;

    // Per sample of the face, the first sample whose switch surface it shares (itself if none): samples that slide on
    // one switch each, of one unit, with normals that point the same way to rounding (e.g. samples fed by one unit
    // below whose weight to this one is 0) cross that surface together, so they take one slope (and, below a dead
    // path, one piece: the same for all, as their inputs to the path are parallel). The hull is then the Clarke set of
    // the loss, whose pieces meet on that one surface, not the larger sum of each sample's own two sides (with which
    // the flow slid where gradient descent does not: the --deep benchmark's problem 1, fuzz draw 13:33).
    std::vector<std::size_t> shared_leaders(const double* th, const double* slopes) {
        const std::size_t count = face_.samples.size(), p = pb_.p;
        std::vector<std::size_t> leader(count);
        for (std::size_t g = 0; g < count; ++g) leader[g] = g;
        auto single = [&](std::size_t g) { return face_.units[g].size() == 1; };
        std::vector<std::vector<double>> normals(count);
        auto normal_of = [&](std::size_t g) -> const std::vector<double>& {
            if (normals[g].empty()) {
                normals[g].resize(p);
                pb_.model.switch_normal(th, pb_.X, slopes, face_.samples[g] * pb_.H + face_.units[g][0],
                                        normals[g].data());
            }
            return normals[g];
        };
        for (std::size_t g = 1; g < count; ++g) {
            if (!single(g)) continue;
            for (std::size_t f = 0; f < g; ++f) {
                if (leader[f] != f || !single(f) || face_.units[f][0] != face_.units[g][0] ||
                    face_.fans[f].seeds != face_.fans[g].seeds || face_.fans[f].layer != face_.fans[g].layer)
                    continue;
                if (same_direction(normal_of(f).data(), normal_of(g).data(), p)) {
                    leader[g] = f;
                    break;
                }
            }
        }
        return leader;
    }

    // sample g's slopes (n_hidden, from the ones in force) <- those of its corner `tag`
    void sample_corner_slopes(std::size_t g, std::uint64_t tag, double* sl) const {
        const std::vector<std::size_t>& units = face_.units[g];
        for (std::size_t a = 0; a < units.size(); ++a) sl[units[a]] = (tag >> a) & 1U ? 1.0 : 0.0;
        const DeadFan& fan = face_.fans[g];
        const std::uint64_t open = tag & fan.seeds;
        if (open == 0) return;  // no input reaches the path: its slopes do not matter
        const std::vector<std::vector<double>>& pieces = fan.pieces.at(open);
        const std::vector<double>& piece = pieces[(tag >> piece_shift) % pieces.size()];
        for (std::size_t u = 0; u < pb_.H; ++u)
            if (pb_.model.switch_layer(u) >= fan.layer) sl[u] = piece[u];
    }

    // the pieces of sample g's dead path opened by the active seed bits `open` (computed once per hull)
    const std::vector<std::vector<double>>& fan_pieces(std::size_t g, const double* th, std::uint64_t open) {
        DeadFan& fan = face_.fans[g];
        auto at = fan.pieces.find(open);
        if (at != fan.pieces.end()) return at->second;
        std::vector<std::size_t> seeds;
        for (std::size_t a = 0; a < face_.units[g].size(); ++a)
            if ((open >> a) & 1U) seeds.push_back(face_.units[g][a]);
        std::vector<std::vector<double>> pieces;
        pb_.model.dead_path_pieces(th, static_cast<std::size_t>(fan.layer), seeds, pieces);
        return fan.pieces.emplace(open, std::move(pieces)).first->second;
    }

    static bool enumerable(std::uint64_t others) {
        std::size_t count = 0;
        for (; others != 0; others &= others - 1) ++count;
        return count <= max_hull_enumeration;
    }

    // (bits of the units in the layer holding most of them (the lowest such), bits of the others); at most 64 units
    std::pair<std::uint64_t, std::uint64_t> layer_bits(const std::vector<std::size_t>& units) const {
        std::vector<std::size_t> count;
        for (std::size_t u : units) {
            const auto l = static_cast<std::size_t>(pb_.model.switch_layer(u));
            if (count.size() <= l) count.resize(l + 1, 0);
            ++count[l];
        }
        const auto largest = static_cast<int>(std::max_element(count.begin(), count.end()) - count.begin());
        std::uint64_t free = 0;
        for (std::size_t a = 0; a < units.size(); ++a)
            if (pb_.model.switch_layer(units[a]) == largest) free |= std::uint64_t{1} << a;
        const std::uint64_t all = units.size() == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << units.size()) - 1;
        return {free, all & ~free};
    }

    // gram_ <- the Gram matrix of rows that touch only their unit's block (row(a): its block): rows of different
    // units are orthogonal, those of one unit meet on its block only
    // Their directions are multiples of their fixed normals, D_a = c_a n_a, so each unit's block is
    // diag(c) N diag(c) with N the Gram matrix of its switches' normals: N and its factor are kept per unit while
    // that unit's switches in `set` stay the same, and only the multiples are new at each evaluation.
    void block_gram(const std::vector<std::size_t>& set, const double* th) {
        labels_.resize(set.size());
        scales_.resize(set.size());
        for (std::size_t a = 0; a < set.size(); ++a) {
            labels_[a] = set[a] % pb_.H;
            scales_[a] = pb_.model.slope_direction_scale(th, set[a], field_.weights()) * unit_;
        }
        auto unit_normals = [&](const std::vector<std::size_t>& rows) -> const NormalGram& {
            UnitNormals& kept = normals_[labels_[rows.front()]];
            const std::size_t m = rows.size();
            bool same = kept.switches.size() == m;
            for (std::size_t a = 0; a < m && same; ++a) same = kept.switches[a] == set[rows[a]];
            if (same) return kept.normals;
            kept.switches.resize(m);
            std::vector<double> n(m * block_);
            for (std::size_t a = 0; a < m; ++a) {
                kept.switches[a] = set[rows[a]];
                pb_.model.switch_normal_block(th, pb_.X, set[rows[a]], &n[a * block_]);
            }
            std::vector<double>& N = kept.normals.gram;
            N.resize(m * m);
            for (std::size_t a = 0; a < m; ++a)
                for (std::size_t b = 0; b <= a; ++b)
                    N[a * m + b] = N[b * m + a] = dot(&n[a * block_], &n[b * block_], block_);
            kept.normals.factor.factor(N.data(), m);
            return kept.normals;
        };
        gram_.assign_scaled(set.size(), labels_.data(), scales_.data(), unit_normals);
    }

    // Deeper networks: the one-sided fields are multilinear, not affine, in the slopes of units on one sample's
    // path, so the Clarke set is the convex hull of the fields at the corners of the slope box: F <- its
    // minimal-norm point (Wolfe). Samples are independent: the hull is a Minkowski sum over the samples that have
    // sliding units, and its linear minimisation picks each sample's best corner. Every path crosses each layer
    // once, so a sample's field is affine in the slopes of any one layer: its best corner is found by sign in its
    // largest layer, for each choice of its other units: 2^(k - k0) (k0 + 1) corner fields at most, not 2^k (k0 of
    // its k units in that layer). Corner fields are computed when first asked for and kept for the solve.
    SlideSolution hull(const std::vector<std::size_t>& Z, const double* th, const double* slopes, double* F) {
        const std::size_t p = pb_.p, H = pb_.H, c = pb_.c;
        unit_ = field_.weight_unit();
        std::vector<std::size_t>& samples = face_.samples;
        samples.clear();
        for (std::size_t z : Z)
            if (samples.empty() || samples.back() != z / H) samples.push_back(z / H);
        face_.units.assign(samples.size(), {});
        face_.fans.assign(samples.size(), {});
        std::vector<std::uint64_t> free_bits(samples.size()), other_bits(samples.size());
        for (std::size_t g = 0; g < samples.size(); ++g) {
            std::vector<std::size_t>& units = face_.units[g];
            for (std::size_t z : Z)
                if (z / H == samples[g]) units.push_back(z % H);
            std::tie(free_bits[g], other_bits[g]) = split_by_layer(units);
            // a dead path above some of its units: the path's piece depends on which of them are active, so the
            // field is no longer affine in their layer's slopes: every corner is enumerated. Not for a path revived
            // as switches on their surfaces (classify.hpp: they have their own slopes in the hull). (A unit below
            // that is active keeps the path alive: it is never dead here.)
            const std::size_t i = samples[g];
            const int dead = pb_.model.first_dead_layer(pb_.X + i * pb_.model.d_in(), slopes + i * H);
            if (dead == std::numeric_limits<int>::max() || dead == 0 || units.size() > max_hull_enumeration) continue;
            DeadFan& fan = face_.fans[g];
            bool revived = false;
            for (std::size_t a = 0; a < units.size(); ++a) {
                const int layer = pb_.model.switch_layer(units[a]);
                if (layer == dead - 1) fan.seeds |= std::uint64_t{1} << a;
                revived = revived || layer >= dead;
            }
            if (revived) fan.seeds = 0;
            if (fan.seeds == 0) continue;
            fan.layer = dead;
            other_bits[g] |= free_bits[g], free_bits[g] = 0;
        }
        const std::vector<std::size_t> leader = shared_leaders(th, slopes);
        std::vector<bool> leads(samples.size(), false);  // a group's first sample, which chooses for all of it
        for (std::size_t g = 0; g < samples.size(); ++g)
            if (leader[g] != g) leads[leader[g]] = true;
        std::vector<double> sl(H), base(p);
        // corner fields of each sample, relative to its all-inactive corner (which F already holds), by corner bits
        std::vector<std::unordered_map<std::uint64_t, std::vector<double>>> kept(samples.size());
        std::vector<std::vector<double>> zeros(samples.size());  // each sample's all-inactive corner field
        auto corner = [&](std::size_t g, std::uint64_t bits) -> const std::vector<double>& {
            if (const auto at = kept[g].find(bits); at != kept[g].end()) return at->second;
            const std::size_t i = samples[g];
            auto field_at = [&](std::uint64_t at, double* out) {
                std::copy(slopes + i * H, slopes + (i + 1) * H, sl.begin());
                if (const std::uint64_t open = at & face_.fans[g].seeds) fan_pieces(g, th, open);
                sample_corner_slopes(g, at, sl.data());
                pb_.model.vjp(th, pb_.X + i * pb_.model.d_in(), 1, sl.data(), field_.weights() + i * c, out,
                              field_.scratch());
            };
            if (zeros[g].empty()) zeros[g].resize(p), field_at(0, zeros[g].data());
            std::vector<double> v(p, 0.0);
            if (bits != 0) {
                field_at(bits, v.data());
                for (std::size_t q = 0; q < p; ++q) v[q] = (v[q] - zeros[g][q]) * unit_;
            }
            return kept[g].emplace(bits, std::move(v)).first->second;
        };
        for (std::size_t q = 0; q < p; ++q) F[q] *= unit_;
        std::copy(F, F + p, base.begin());
        // the hull's vertex that takes corner choice[g] in every sample g
        auto vertex = [&](const std::vector<std::size_t>& choice, double* v) {
            std::copy(base.begin(), base.end(), v);
            for (std::size_t g = 0; g < samples.size(); ++g) {
                const std::vector<double>& add = corner(g, choice[g]);
                for (std::size_t q = 0; q < p; ++q) v[q] += add[q];
            }
        };
        auto lmo = [&](const double* x, double* v) {
            std::vector<std::size_t> choice(samples.size());
            for (std::size_t g = 0; g < samples.size(); ++g) {
                if (leader[g] != g) {  // its leader came first and chose for the group
                    choice[g] = choice[leader[g]];
                    continue;
                }
                if (leads[g]) {  // its one unit active (on each piece of a dead path above it) or not, in all
                    const std::uint64_t open = face_.fans[g].seeds;
                    const std::uint64_t n_pieces = open == 0 ? 1 : fan_pieces(g, th, open).size();
                    double best_value = 0.0;  // the all-inactive corner's (relative to itself)
                    choice[g] = 0;
                    for (std::uint64_t piece = 0; piece < n_pieces; ++piece) {
                        const std::uint64_t tag = 1 | piece << piece_shift;
                        double value = 0.0;
                        for (std::size_t m = g; m < samples.size(); ++m)
                            if (leader[m] == g) value += dot(x, corner(m, tag).data(), p);
                        if (value < best_value) best_value = value, choice[g] = tag;
                    }
                    continue;
                }
                double best_value = INFINITY;
                // every choice of the other units (the subsets of other_bits), then the free layer by sign
                std::uint64_t other = 0;
                do {
                    const std::uint64_t open = other & face_.fans[g].seeds;
                    const std::uint64_t n_pieces = open == 0 ? 1 : fan_pieces(g, th, open).size();
                    for (std::uint64_t piece = 0; piece < n_pieces; ++piece) {
                        const std::uint64_t tag = other | piece << piece_shift;
                        const double at_other = dot(x, corner(g, tag).data(), p);
                        double value = at_other;
                        std::uint64_t bits = tag;
                        for (std::uint64_t rest = free_bits[g]; rest != 0; rest &= rest - 1) {
                            const std::uint64_t bit = rest & (~rest + 1);
                            const double change = dot(x, corner(g, other | bit).data(), p) - at_other;
                            if (change < 0.0) value += change, bits |= bit;
                        }
                        if (value < best_value) best_value = value, choice[g] = bits;
                    }
                    other = (other - other_bits[g]) & other_bits[g];
                } while (other != 0);
            }
            vertex(choice, v);
            return choice;
        };
        // the last hull's corral over the same sliding set (its corner choices) starts Wolfe near its answer: the
        // velocity is asked for at nearby states, a step's stages and the checks around them
        using HullCorral = Corral<std::vector<std::size_t>>;
        HullCorral last = Z == hull_Z_ ? std::move(face_.corral) : HullCorral{};
        // a corral from before samples came to share a surface has corners of the larger hull: start afresh
        auto uncoupled = [&](const std::vector<std::size_t>& tag) {
            for (std::size_t g = 0; g < samples.size(); ++g)
                if (tag[g] != tag[leader[g]]) return true;
            return false;
        };
        if (std::any_of(last.tags.begin(), last.tags.end(), uncoupled)) last = HullCorral{};
        hull_Z_ = Z;
        HullCorral& corral = face_.corral = min_norm_point(p, lmo, F, last.tags, last.weights, vertex);
        const double error = std::sqrt(corral.gap) / unit_;
        if (unit_ != 1.0) {
            for (std::size_t q = 0; q < p; ++q) F[q] /= unit_;
            for (double& v : corral.points) v /= unit_;
            corral.gap /= unit_ * unit_;
        }
        return {{}, true, error};
    }

    const Problem& pb_;
    Field& field_;
    std::size_t block_;  // the model's unit block length (0: none)
    std::vector<double> D_, B_;        // full and block-restricted slope directions
    BlockGram gram_;                   // their Gram matrix
    std::vector<std::size_t> labels_;  // the unit of each row
    std::vector<double> scales_;       // block models: each row's multiple of its switch's normal
    struct UnitNormals {
        std::vector<std::size_t> switches;
        NormalGram normals;
    };
    std::vector<UnitNormals> normals_;  // block models, per unit: its last switches' normals' Gram matrix (factored)
    HullFace face_;
    std::vector<std::size_t> hull_Z_;  // the sliding set of face_
    std::vector<double> normal_, direction_;  // hull_slope's
    double unit_ = 1.0;  // the field's weight unit at the last solve (directions and Gram matrix are scaled by it)
};

// The velocity of the flow with the current modes: the smooth field, made tangent on the sliding set.
class Velocity {
public:
    Velocity(Field& field, Sliding& sliding, const SwitchState& state) : field_(field), sliding_(sliding), st_(state) {}

    SlideSolution operator()(double tau, const double* th, double* F) {
        field_.evaluate(tau, th, st_.slopes.data(), F);
        if (st_.Z.empty()) return {};
        SlideSolution sol = sliding_.add(st_.Z, th, st_.slopes.data(), F);
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
};

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
