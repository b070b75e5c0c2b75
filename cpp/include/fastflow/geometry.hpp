// The geometry of the switching surfaces {h_k(theta) = 0}: normals, rounding scales and bands, and the
// minimal-norm projection onto an intersection of surfaces.
#pragma once
#include <algorithm>
#include <cstddef>
#include <limits>
#include <vector>

#include "linalg.hpp"
#include "types.hpp"

namespace fastflow {

// the normals of a set of switches (one row of length p each) and their Gram matrix
struct Normals {
    std::vector<double> rows, gram;
    std::size_t count = 0;
};

inline void gram_matrix(const std::vector<double>& rows, std::size_t k, std::size_t p, std::vector<double>& Q) {
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
    SwitchGeometry(const Problem& pb, double* scratch) : pb_(pb), scratch_(scratch), h_(pb.NS) {}

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
        for (std::size_t i = 0; i < pb_.n; ++i) {
            layer_max.assign(layer_max.size(), 0.0);
            for (std::size_t u = 0; u < pb_.H; ++u) {
                const auto layer = static_cast<std::size_t>(pb_.model.switch_layer(u));
                if (layer >= layer_max.size()) layer_max.resize(layer + 1, 0.0);
                layer_max[layer] = std::max(layer_max[layer], out.scale[i * pb_.H + u]);
            }
            for (std::size_t u = 0; u < pb_.H; ++u)
                out.floor[i * pb_.H + u] = layer_max[static_cast<std::size_t>(pb_.model.switch_layer(u))];
        }
    }

    void normal(const double* th, const double* slopes, std::size_t sw, double* n) const {
        pb_.model.switch_normal(th, pb_.X, slopes, sw, n);
    }

    Normals normals(const double* th, const double* slopes, const std::vector<std::size_t>& set) const {
        Normals nm;
        nm.count = set.size();
        nm.rows.resize(set.size() * pb_.p);
        for (std::size_t a = 0; a < set.size(); ++a) normal(th, slopes, set[a], &nm.rows[a * pb_.p]);
        gram_matrix(nm.rows, set.size(), pb_.p, nm.gram);
        return nm;
    }

    // minimal-norm correction of theta putting it exactly on the surfaces of `set`
    void project(double* theta, const double* slopes, const std::vector<std::size_t>& set) {
        const std::size_t k = set.size(), p = pb_.p;
        const Normals nm = normals(theta, slopes, set);
        preactivations(theta, slopes);
        std::vector<double> rhs(k), lam;
        for (std::size_t a = 0; a < k; ++a) rhs[a] = h_[set[a]];
        solve_psd(nm.gram, rhs, k, lam);
        for (std::size_t a = 0; a < k; ++a)
            for (std::size_t q = 0; q < p; ++q) theta[q] -= lam[a] * nm.rows[a * p + q];
    }

    // whether the normal of switch sw is a combination of the given normals, to rounding
    bool in_span(const double* th, const double* slopes, std::size_t sw, const Normals& nm) const {
        const std::size_t k = nm.count, p = pb_.p;
        std::vector<double> n(p);
        normal(th, slopes, sw, n.data());
        std::vector<double> rhs(k), lam;
        for (std::size_t a = 0; a < k; ++a) rhs[a] = dot(&nm.rows[a * p], n.data(), p);
        solve_psd(nm.gram, rhs, k, lam);
        const double nn = norm2(n.data(), p);
        for (std::size_t a = 0; a < k; ++a)
            for (std::size_t q = 0; q < p; ++q) n[q] -= lam[a] * nm.rows[a * p + q];
        return norm2(n.data(), p) <= 1e-9 * nn;
    }

    // n . F for switch sw (n written to `n`), and its tangency tolerance: the box solver's own resolution (its
    // optimality tolerance is 1e-13 relative)
    double normal_velocity(const double* th, const double* slopes, std::size_t sw, const double* F, double fnorm,
                           double* n, double& tol) const {
        normal(th, slopes, sw, n);
        tol = 1e-12 * norm2(n, pb_.p) * fnorm;
        return dot(n, F, pb_.p);
    }

private:
    const Problem& pb_;
    double* scratch_;
    std::vector<double> h_;
};

}  // namespace fastflow
