// The geometry of the switching surfaces {h_k(theta) = 0}: normals, rounding scales and bands, and the
// minimal-norm projection onto an intersection of surfaces.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <utility>
#include <vector>

#include "block_gram.hpp"
#include "linalg.hpp"
#include "types.hpp"

namespace fastflow {

// The normals of a set of switches and their Gram matrix. Block models (two-layer nets): a normal is nonzero only
// on its unit's block, so each row holds just that block (len entries from offset[a]) and labels[a] names the unit:
// the Gram matrix splits by unit.
struct Normals {
    std::vector<double> rows;
    BlockGram gram;
    std::size_t count = 0, len = 0;
    std::vector<std::size_t> offset, labels;

    bool blocks() const { return !labels.empty(); }
    const double* row(std::size_t a) const { return &rows[a * len]; }
};

inline void gram_matrix(const double* rows, std::size_t k, std::size_t p, std::vector<double>& Q) {
    Q.assign(k * k, 0.0);
    for (std::size_t a = 0; a < k; ++a)
        for (std::size_t b = 0; b <= a; ++b) Q[a * k + b] = Q[b * k + a] = dot(&rows[a * p], &rows[b * p], p);
}

// A switch's rounding scale (sum |w_jl x_il|) and its floor: the largest scale of its layer on the same sample (a
// neuron whose weights reach zero, e.g. sliding into the apex of its surfaces, has only rounding noise left and no
// scale of its own).
struct SwitchScales {
    std::vector<double> scale, floor;

    // the rounding band of switch k, widened by its boost when it grazes its surface
    double band(std::size_t k, double boost) const {
        return 32.0 * std::numeric_limits<double>::epsilon() * std::max(boost * scale[k], floor[k]);
    }
};

class SwitchGeometry {
public:
    SwitchGeometry(const Problem& pb, double* scratch) : pb_(pb), scratch_(scratch), h_(pb.NS), layer_(pb.H) {
        for (std::size_t u = 0; u < pb.H; ++u) {
            layer_[u] = static_cast<std::size_t>(pb.model.switch_layer(u));
            layers_ = std::max(layers_, layer_[u] + 1);
        }
        const std::size_t len = pb.model.unit_block_size();
        if (len > 0) normal_norms_.resize(pb.NS), unit_normals_.resize(pb.H);
        for (std::size_t k = 0; k < normal_norms_.size(); ++k)
            normal_norms_[k] = norm2(pb.model.fixed_normal(pb.X, k), len);
    }

    // block models: |n_k|, the norms of the switches' fixed normals
    const double* normal_norms() const { return normal_norms_.data(); }

    // The switches of the units `touched` (one flag per unit) within their rounding bands at th, boosted by
    // `boost` (empty: 1); a unit whose inputs are all exactly zero (scale 0) is no switch. `sample_floor` (empty:
    // none) also takes every switch of sample i with |h| <= sample_floor[i]. Block models look only at those whose
    // band can reach them: band <= 32 eps |n_k| max(boost |w_j|, max_u |w_u|) (Cauchy-Schwarz on the scales).
    std::vector<std::size_t> in_bands(const double* th, const double* slopes, const std::vector<bool>& touched,
                                      const std::vector<double>& boost,
                                      const std::vector<double>& sample_floor = {}) {
        const std::size_t H = pb_.H, len = pb_.model.unit_block_size();
        auto boost_of = [&](std::size_t k) { return boost.empty() ? 1.0 : boost[k]; };
        auto floor_of = [&](std::size_t k) { return sample_floor.empty() ? -1.0 : sample_floor[k / H]; };
        std::vector<std::size_t> out;
        SwitchScales& sc = band_scales_;  // kept: only the entries of the samples looked at are read
        auto accept = [&](std::size_t k, double hk) {
            const double b = sc.band(k, boost_of(k));
            if ((b > 0.0 && std::abs(hk) <= b) || std::abs(hk) <= floor_of(k)) out.push_back(k);
        };
        if (len == 0) {
            preactivations(th, slopes);
            scales(th, slopes, sc);
            for (std::size_t k = 0; k < pb_.NS; ++k)
                if (touched[k % H]) accept(k, h_[k]);
            return out;
        }
        constexpr double eps = std::numeric_limits<double>::epsilon();
        std::vector<double> w_norm(H);
        double w_max = 0.0;
        for (std::size_t u = 0; u < H; ++u)
            w_norm[u] = norm2(th + pb_.model.unit_block_offset(u), len), w_max = std::max(w_max, w_norm[u]);
        std::vector<std::size_t> units;  // the touched ones (an event touches one or two of the width's)
        for (std::size_t u = 0; u < H; ++u)
            if (touched[u]) units.push_back(u);
        const std::vector<double>& pre = block_preactivations(th, units);
        std::vector<std::size_t> near, samples;
        std::vector<double> h;
        for (std::size_t i = 0; i < pb_.n; ++i)
            for (std::size_t b = 0; b < units.size(); ++b) {
                const std::size_t u = units[b], k = i * H + u;
                const double hk = pre[b * pb_.n + i];
                const double reach =
                    std::max(32.0 * eps * normal_norms_[k] * std::max(boost_of(k) * w_norm[u], w_max), floor_of(k));
                if (std::abs(hk) > reach * (1.0 + 1e-12)) continue;
                near.push_back(k), h.push_back(hk);
                if (samples.empty() || samples.back() != i) samples.push_back(i);
            }
        sample_scales(th, slopes, samples, sc);
        for (std::size_t a = 0; a < near.size(); ++a) accept(near[a], h[a]);
        return out;
    }

    // Block models: the pre-activations n_k . w_u of every sample at the units `units`, unit-major (the model's own
    // sum, four samples at a time)
    const std::vector<double>& block_preactivations(const double* th, const std::vector<std::size_t>& units) {
        const std::size_t n = pb_.n, H = pb_.H, len = pb_.model.unit_block_size();
        block_h_.resize(units.size() * n);
        for (std::size_t b = 0; b < units.size(); ++b) {
            const double* w = th + pb_.model.unit_block_offset(units[b]);
            double* out = &block_h_[b * n];
            const double* const ws[4] = {w, w, w, w};
            std::size_t i = 0;
            for (; i + 4 <= n; i += 4) {
                const double* const xs[4] = {pb_.model.fixed_normal(pb_.X, i * H + units[b]),
                                             pb_.model.fixed_normal(pb_.X, (i + 1) * H + units[b]),
                                             pb_.model.fixed_normal(pb_.X, (i + 2) * H + units[b]),
                                             pb_.model.fixed_normal(pb_.X, (i + 3) * H + units[b])};
                dot4(xs, ws, len, out + i);
            }
            for (; i < n; ++i) out[i] = dot(pb_.model.fixed_normal(pb_.X, i * H + units[b]), w, len);
        }
        return block_h_;
    }

    // Block models: the Gram matrix of the fixed normals of unit switches (all of one unit, in this order) and its
    // factor. Kept per unit for its last switches: they change at events only, and the velocity, the projection and
    // the classification all ask for them.
    const NormalGram& unit_normals(const std::size_t* switches, std::size_t m) {
        UnitNormals& kept = unit_normals_[switches[0] % pb_.H];
        if (kept.switches.size() == m && std::equal(switches, switches + m, kept.switches.begin()))
            return kept.normals;
        kept.switches.assign(switches, switches + m);
        const std::size_t len = pb_.model.unit_block_size();
        std::vector<double>& N = kept.normals.gram;
        N.resize(m * m);
        for (std::size_t a = 0; a < m; ++a)
            for (std::size_t b = 0; b <= a; ++b)
                N[a * m + b] = N[b * m + a] =
                    dot(pb_.model.fixed_normal(pb_.X, switches[a]), pb_.model.fixed_normal(pb_.X, switches[b]), len);
        kept.normals.factor.factor(N.data(), m);
        return kept.normals;
    }

    // every pre-activation at th (slopes = nullptr: deeper layers see sigma'(h) = 1[h > 0])
    const std::vector<double>& preactivations(const double* th, const double* slopes) {
        pb_.model.preactivations(th, pb_.X, pb_.n, slopes, h_.data(), scratch_);
        return h_;
    }

    void scales(const double* th, const double* slopes, SwitchScales& out) const {
        out.scale.resize(pb_.NS);
        out.floor.resize(pb_.NS);
        pb_.model.switch_scales(th, pb_.X, pb_.n, slopes, out.scale.data());
        std::vector<double> layer_max;
        for (std::size_t i = 0; i < pb_.n; ++i) floors(i, out, layer_max);
    }

    // the same for the switches of `samples` only (out sized for all), in one call of the model
    void sample_scales(const double* th, const double* slopes, const std::vector<std::size_t>& samples,
                       SwitchScales& out) const {
        const std::size_t H = pb_.H, d = pb_.model.d_in(), m = samples.size();
        out.scale.resize(pb_.NS);
        out.floor.resize(pb_.NS);
        if (m == 0) return;
        std::vector<double> X(m * d), sl(m * H), scale(m * H), layer_max;
        for (std::size_t r = 0; r < m; ++r) {
            std::copy(pb_.X + samples[r] * d, pb_.X + (samples[r] + 1) * d, &X[r * d]);
            std::copy(slopes + samples[r] * H, slopes + (samples[r] + 1) * H, &sl[r * H]);
        }
        pb_.model.switch_scales(th, X.data(), m, sl.data(), scale.data());
        for (std::size_t r = 0; r < m; ++r) {
            std::copy(&scale[r * H], &scale[(r + 1) * H], &out.scale[samples[r] * H]);
            floors(samples[r], out, layer_max);
        }
    }

    void normal(const double* th, const double* slopes, std::size_t sw, double* n) const {
        pb_.model.switch_normal(th, pb_.X, slopes, sw, n);
    }

    Normals normals(const double* th, const double* slopes, const std::vector<std::size_t>& set) const {
        Normals nm;
        const std::size_t k = set.size(), block = pb_.model.unit_block_size();
        nm.count = k;
        nm.len = block > 0 ? block : pb_.p;
        nm.rows.resize(k * nm.len);
        nm.offset.assign(k, 0);
        if (block == 0) {
            for (std::size_t a = 0; a < k; ++a) normal(th, slopes, set[a], &nm.rows[a * nm.len]);
        } else {
            nm.labels.resize(k);
            for (std::size_t a = 0; a < k; ++a) {
                nm.labels[a] = set[a] % pb_.H;
                nm.offset[a] = pb_.model.unit_block_offset(nm.labels[a]);
                std::copy_n(pb_.model.fixed_normal(pb_.X, set[a]), nm.len, &nm.rows[a * nm.len]);
            }
        }
        nm.gram.assign(k, nm.len, nm.blocks() ? nm.labels.data() : nullptr, [&](std::size_t a) { return nm.row(a); });
        return nm;
    }

    // minimal-norm correction of theta putting it exactly on the surfaces of `set`
    void project(double* theta, const double* slopes, const std::vector<std::size_t>& set) {
        if (pb_.model.unit_block_size() > 0) return project_blocks(theta, set);
        const std::size_t k = set.size();
        const Normals nm = normals(theta, slopes, set);
        std::vector<double> rhs(k), lam;
        preactivations(theta, slopes);
        for (std::size_t a = 0; a < k; ++a) rhs[a] = h_[set[a]];
        nm.gram.solve(rhs, lam);
        for (std::size_t a = 0; a < k; ++a)
            for (std::size_t q = 0; q < nm.len; ++q) theta[nm.offset[a] + q] -= lam[a] * nm.row(a)[q];
    }

    // Block models: whether every switch of `set` is on its surface to the rounding of its pre-activation
    // (|n_k . w| <= 32 eps |n_k| |w|); never for other models, whose surfaces are not linear in theta
    bool on_surfaces(const double* th, const std::vector<std::size_t>& set) const {
        const std::size_t len = pb_.model.unit_block_size();
        if (len == 0) return false;
        for (std::size_t k : set) {
            const double* w = th + pb_.model.unit_block_offset(k % pb_.H);
            if (std::abs(dot(pb_.model.fixed_normal(pb_.X, k), w, len)) >
                32.0 * std::numeric_limits<double>::epsilon() * normal_norms_[k] * norm2(w, len))
                return false;
        }
        return true;
    }

    // The switches of `among` that share switch z's surface, z first: those of its unit whose normals point the
    // same way to rounding (e.g. samples fed by one unit below whose weight to this one is 0), crossed together.
    std::vector<std::size_t> shared_surface(const double* th, const double* slopes, std::size_t z,
                                            const std::vector<std::size_t>& among) const {
        const std::size_t p = pb_.p;
        std::vector<double> nz(p), nb(p);
        normal(th, slopes, z, nz.data());
        std::vector<std::size_t> out{z};
        for (std::size_t b : among) {
            if (b == z || b % pb_.H != z % pb_.H) continue;
            normal(th, slopes, b, nb.data());
            if (same_direction(nz.data(), nb.data(), p)) out.push_back(b);
        }
        return out;
    }

    // whether the normal of switch sw is a combination of the given normals (of a net without unit blocks), to
    // rounding
    bool in_span(const double* th, const double* slopes, std::size_t sw, const Normals& nm) const {
        std::vector<double> n(pb_.p);
        normal(th, slopes, sw, n.data());
        const auto solve = [&](const double* b, std::vector<double>& x) {
            nm.gram.solve(std::vector<double>(b, b + nm.count), x);
        };
        return residual_in_span(n.data(), pb_.p, nm.rows.data(), nm.count, solve);
    }

    // ... the same in a block model, for the normals of the switches of `set`: those of sw's unit (the others' are
    // orthogonal to it), with their kept Gram matrix
    bool in_unit_span(std::size_t sw, const std::vector<std::size_t>& set) {
        const std::size_t len = pb_.model.unit_block_size();
        std::vector<std::size_t> own;
        for (std::size_t z : set)
            if (z % pb_.H == sw % pb_.H) own.push_back(z);
        const double* n = pb_.model.fixed_normal(pb_.X, sw);
        if (own.empty()) return norm2(n, len) == 0.0;
        const NormalGram& gram = unit_normals(own.data(), own.size());
        std::vector<double> rows(own.size() * len);
        for (std::size_t a = 0; a < own.size(); ++a)
            std::copy_n(pb_.model.fixed_normal(pb_.X, own[a]), len, &rows[a * len]);
        return residual_in_span(n, len, rows.data(), own.size(), [&](const double* b, std::vector<double>& x) {
            x.resize(own.size());
            gram.factor.solve(b, x.data());
        });
    }

    // n . F for switch sw (its normal written to `n`; block models: on its unit's block only), and its tangency
    // tolerance: the box solver's own resolution (its optimality tolerance is 1e-13 relative)
    double normal_velocity(const double* th, const double* slopes, std::size_t sw, const double* F, double fnorm,
                           double* n, double& tol) const {
        const std::size_t block = pb_.model.unit_block_size(), len = block > 0 ? block : pb_.p;
        if (block > 0) std::copy_n(pb_.model.fixed_normal(pb_.X, sw), len, n);
        else normal(th, slopes, sw, n);
        tol = 1e-12 * norm2(n, len) * fnorm;
        return dot(n, block > 0 ? F + pb_.model.unit_block_offset(sw % pb_.H) : F, len);
    }

private:
    struct UnitNormals {
        std::vector<std::size_t> switches;
        NormalGram normals;
    };

    // project() for block models, unit by unit with each unit's kept normals (the blocks do not meet)
    void project_blocks(double* theta, const std::vector<std::size_t>& set) {
        const std::size_t len = pb_.model.unit_block_size();
        std::vector<std::pair<std::size_t, std::size_t>> order(set.size());  // (unit, position in set)
        for (std::size_t a = 0; a < set.size(); ++a) order[a] = {set[a] % pb_.H, a};
        std::sort(order.begin(), order.end());
        std::vector<std::size_t> own;
        std::vector<double> rhs, lam;
        for (std::size_t first = 0; first < order.size();) {
            const std::size_t u = order[first].first;
            std::size_t end = first;
            own.clear();
            for (; end < order.size() && order[end].first == u; ++end) own.push_back(set[order[end].second]);
            double* w = theta + pb_.model.unit_block_offset(u);
            const std::size_t m = own.size();
            rhs.resize(m), lam.resize(m);
            for (std::size_t a = 0; a < m; ++a) rhs[a] = dot(pb_.model.fixed_normal(pb_.X, own[a]), w, len);
            unit_normals(own.data(), m).factor.solve(rhs.data(), lam.data());
            for (std::size_t a = 0; a < m; ++a) {
                const double* normal = pb_.model.fixed_normal(pb_.X, own[a]);
                for (std::size_t q = 0; q < len; ++q) w[q] -= lam[a] * normal[q];
            }
            first = end;
        }
    }

    // whether n (len) less its least-squares combination of the k rows (k x len), whose Gram system solve(b, x)
    // solves, is within rounding of 0
    template <class Solve>
    static bool residual_in_span(const double* normal, std::size_t len, const double* rows, std::size_t k,
                                 Solve&& solve) {
        std::vector<double> n(normal, normal + len), rhs(k), lam;
        for (std::size_t a = 0; a < k; ++a) rhs[a] = dot(&rows[a * len], n.data(), len);
        solve(rhs.data(), lam);
        const double nn = norm2(n.data(), len);
        for (std::size_t a = 0; a < k; ++a)
            for (std::size_t q = 0; q < len; ++q) n[q] -= lam[a] * rows[a * len + q];
        return norm2(n.data(), len) <= 1e-9 * nn;
    }

    // sample i's floors: the largest scale of each layer, taken run by run of units of one layer (a running maximum
    // kept in memory, through the unit's layer, costs a store-to-load wait per unit); layer_max: workspace
    void floors(std::size_t i, SwitchScales& out, std::vector<double>& layer_max) const {
        const double* scale = &out.scale[i * pb_.H];
        layer_max.assign(layers_, 0.0);
        for (std::size_t u = 0; u < pb_.H;) {
            const std::size_t layer = layer_[u];
            double largest = 0.0;
            for (; u < pb_.H && layer_[u] == layer; ++u) largest = std::max(largest, scale[u]);
            layer_max[layer] = std::max(layer_max[layer], largest);
        }
        for (std::size_t u = 0; u < pb_.H; ++u) out.floor[i * pb_.H + u] = layer_max[layer_[u]];
    }

    const Problem& pb_;
    double* scratch_;
    std::vector<double> h_;
    std::vector<std::size_t> layer_;  // each unit's layer (the model's, looked up once)
    std::vector<double> normal_norms_;  // block models: |n_k|
    SwitchScales band_scales_;           // in_bands' (one per switch: allocated and cleared once, not per event)
    std::vector<double> block_h_;        // block_preactivations'
    std::vector<UnitNormals> unit_normals_;  // block models: unit_normals'
    std::size_t layers_ = 0;
};

}  // namespace fastflow
