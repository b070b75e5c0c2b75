// Deeper networks' sliding: the velocity on their switching surfaces is the minimal-norm point of the hull of the
// fields at the corners of the sliding units' slope box (Wolfe), the Clarke set of the loss there
// (docs/mathematics.md §2).
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

#include "field.hpp"
#include "linalg.hpp"
#include "minnorm.hpp"
#include "types.hpp"

namespace fastflow {

class Hull {
public:
    // a sample's hull units outside its largest layer, whose 2^k choices its linear minimisation goes through
    static constexpr std::size_t max_enumeration = 12;

    // (bits of the units in the largest layer, bits of the others) of a sample's hull units (by position); throws
    // past max_enumeration, or past 64 units
    std::pair<std::uint64_t, std::uint64_t> split_by_layer(const std::vector<std::size_t>& units) const {
        const auto bits = units.size() <= 64 ? layer_bits(units) : std::pair<std::uint64_t, std::uint64_t>{};
        if (units.size() > 64 || !enumerable(bits.second))
            throw std::runtime_error("more than " + std::to_string(max_enumeration) +
                                     " units of one sample outside its largest layer (or 64 in all) slide at once "
                                     "in a deep network");
        return bits;
    }
    // whether a sample's hull over these units is within the limits above
    bool fits(const std::vector<std::size_t>& units) const {
        return units.size() <= 64 && enumerable(layer_bits(units).second);
    }


    Hull(const Problem& pb, Field& field) : pb_(pb), field_(field) {}

    // A sample's dead path above sliding units (dead_paths.hpp): its slopes are not the sides it holds but those of
    // the piece of the path that the corner's active seeds (its sliding units in the layer below) open
    struct DeadFan {
        std::uint64_t seeds = 0;  // bits of the sample's hull units that feed the path (0: no such path)
        int layer = 0;
        std::unordered_map<std::uint64_t, std::vector<std::vector<double>>> pieces;  // by active seed bits
    };
    // The last hull (from solve()): per sliding sample its units, and the corral of its minimal-norm point,
    // each point tagged with the corner taken in every sample (bit a: the slope of units[a]; from bit 32, in a
    // sample below a dead path (at most 12 units), the path's piece)
    struct Face {
        std::vector<std::size_t> samples;
        std::vector<std::vector<std::size_t>> units;
        std::vector<DeadFan> fans;  // per sample
        Corral<std::vector<std::size_t>> corral;
    };
    const Face& last() const { return face_; }
    // slopes (n x n_hidden) <- the slopes in force with the corners of the last hull's corral point j
    void corner_slopes(std::size_t j, const double* slopes, std::vector<double>& out) const {
        out.assign(slopes, slopes + pb_.n * pb_.H);
        for (std::size_t g = 0; g < face_.samples.size(); ++g)
            sample_corner_slopes(g, face_.corral.tags[j][g], &out[face_.samples[g] * pb_.H]);
    }
    // Deeper nets, a switch z of the last hull that slides alone in its sample (slope_is_local): its slope's
    // mean s over the corral, and the derivative of its normal velocity in that slope, nd = n_z . dF/ds_z (loss
    // weights G, n x d_out), so that its one-sided normal velocities are dh + (1 - s) nd and dh - s nd (the two-layer
    // multiplier's, branches.hpp). A sample's field is multilinear in its slopes and n_z holds none of z's own, so nd
    // is one evaluation at the slopes in force, whatever the corral. scale: |n_z| |G_i dPhi_i/dtheta|, of which nd's
    // errors are a part (nd itself vanishes with the signal z passes on, at a turn). length: |n_z|. All 0: z is not
    // in the hull.
    struct Slope {
        double s = 0.0, nd = 0.0, scale = 0.0, length = 0.0;
    };
    Slope slope(std::size_t z, const double* th, const double* slopes, const double* G) {
        const std::size_t i = z / pb_.H, p = pb_.p, d = pb_.model.d_in();
        const auto g = static_cast<std::size_t>(
            std::find(face_.samples.begin(), face_.samples.end(), i) - face_.samples.begin());
        if (g == face_.samples.size()) return {};
        Slope out;
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
    // whether z slides alone in its sample and opens no dead path: slope's condition (with others, nd would be
    // averaged over the corral's corners, which are not unique where the hull is degenerate)
    bool slope_is_local(std::size_t z) const {
        const auto g = static_cast<std::size_t>(
            std::find(face_.samples.begin(), face_.samples.end(), z / pb_.H) - face_.samples.begin());
        return g == face_.samples.size() || (face_.units[g].size() == 1 && face_.fans[g].seeds == 0);
    }
    // ... for every switch of a shared surface (shared_slope's condition)
    bool slope_is_local(const std::vector<std::size_t>& shared) const {
        return std::all_of(shared.begin(), shared.end(), [this](std::size_t z) { return slope_is_local(z); });
    }
    // A surface several switches share (SwitchGeometry::shared_surface), crossed by all at once: its nd is the sum
    // of theirs in the first one's normal (each times |n_first| / |n_b|, at th: the normals' lengths move along a
    // step, and ratios held from its start made a sum of rates of opposite signs cross 0 off the true crossing,
    // one turn after another closing in on it), its s their nd-weighted mean slope
    Slope shared_slope(const std::vector<std::size_t>& shared, const double* th, const double* slopes,
                           const double* G) {
        Slope out;
        double active = 0.0, first = 0.0;
        for (std::size_t b = 0; b < shared.size(); ++b) {
            const Slope one = slope(shared[b], th, slopes, G);
            if (b == 0) first = one.length;
            const double ratio = one.length > 0.0 ? first / one.length : 0.0;
            out.nd += one.nd * ratio, out.scale += one.scale * ratio;
            active += one.s * one.nd * ratio;
        }
        out.s = out.nd != 0.0 ? active / out.nd : 0.0;
        return out;
    }
    // ... at the loss weights of the last field evaluation
    Slope shared_slope(const std::vector<std::size_t>& shared, const double* th, const double* slopes) {
        return shared_slope(shared, th, slopes, field_.weights());
    }

    // a new trajectory: no hull to start Wolfe from (see solve())
    void forget() { Z_.clear(); }

    // Deeper networks: the one-sided fields are multilinear, not affine, in the slopes of units on one sample's
    // path, so the Clarke set is the convex hull of the fields at the corners of the slope box: F <- its
    // minimal-norm point (Wolfe). Samples are independent: the hull is a Minkowski sum over the samples that have
    // sliding units, and its linear minimisation picks each sample's best corner. Every path crosses each layer
    // once, so a sample's field is affine in the slopes of any one layer: its best corner is found by sign in its
    // largest layer, for each choice of its other units: 2^(k - k0) (k0 + 1) corner fields at most, not 2^k (k0 of
    // its k units in that layer). Corner fields are computed when first asked for and kept for the solve.
    // returns a bound on its distance from the exact minimal-norm point (Wolfe's duality gap, square-rooted)
    double solve(const std::vector<std::size_t>& Z, const double* th, const double* slopes, double* F) {
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
            if (dead == std::numeric_limits<int>::max() || dead == 0 || units.size() > max_enumeration) continue;
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
        using FaceCorral = Corral<std::vector<std::size_t>>;
        FaceCorral start = Z == Z_ ? std::move(face_.corral) : FaceCorral{};
        // a corral from before samples came to share a surface has corners of the larger hull: start afresh
        auto uncoupled = [&](const std::vector<std::size_t>& tag) {
            for (std::size_t g = 0; g < samples.size(); ++g)
                if (tag[g] != tag[leader[g]]) return true;
            return false;
        };
        if (std::any_of(start.tags.begin(), start.tags.end(), uncoupled)) start = FaceCorral{};
        Z_ = Z;
        FaceCorral& corral = face_.corral = min_norm_point(p, lmo, F, start.tags, start.weights, vertex);
        const double error = std::sqrt(corral.gap) / unit_;
        if (unit_ != 1.0) {
            for (std::size_t q = 0; q < p; ++q) F[q] /= unit_;
            for (double& v : corral.points) v /= unit_;
            corral.gap /= unit_ * unit_;
        }
        return error;
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
        return count <= max_enumeration;
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

    const Problem& pb_;
    Field& field_;
    Face face_;
    std::vector<std::size_t> Z_;  // the sliding set of face_
    std::vector<double> normal_, direction_;  // slope()'s
    double unit_ = 1.0;  // the field's weight unit at the last solve (the corner fields are scaled by it)
};

}  // namespace fastflow
