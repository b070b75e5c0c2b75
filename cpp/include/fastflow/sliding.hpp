// Filippov sliding: the velocity on an intersection of switching surfaces is the minimal-norm element of the
// Clarke subdifferential (docs/mathematics.md §2). Two-layer networks solve for the multipliers here, deeper ones
// on the hull of their corner fields (hull.hpp).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "block_gram.hpp"
#include "field.hpp"
#include "hull.hpp"
#include "linalg.hpp"
#include "loss.hpp"
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
    Sliding(const Problem& pb, Field& field)
        : pb_(pb), field_(field), block_(pb.model.unit_block_size()), normals_(block_ > 0 ? pb.H : 0),
          hull_(pb, field) {}

    // deeper networks' sliding (see add())
    Hull& hull() { return hull_; }
    const Hull& hull() const { return hull_; }

    // rows D_a = dF/ds_a for the switches of `set`, and their Gram matrix (as directions(), gram()), both in
    // unit(): times the field's weight unit. Block models: each row on its unit's block only (row_length() long, at
    // its unit's offset in theta; the rest is zero), and the Gram matrix told the blocks.
    void slope_directions(const std::vector<std::size_t>& set, const double* th, const double* slopes) {
        const std::size_t k = set.size();
        len_ = block_ > 0 ? block_ : pb_.p;
        D_.resize(k * len_);
        offset_.assign(k, 0);
        unit_ = field_.weight_unit();
        for (std::size_t a = 0; a < k; ++a) {
            if (block_ == 0) {
                pb_.model.slope_direction(th, pb_.X, slopes, set[a], field_.weights(), &D_[a * len_]);
                continue;
            }
            offset_[a] = pb_.model.unit_block_offset(set[a] % pb_.H);
            pb_.model.slope_direction_block(th, pb_.X, set[a], field_.weights(), &D_[a * len_]);
        }
        if (unit_ != 1.0)
            for (double& v : D_) v *= unit_;
        if (block_ == 0) return gram_.assign(k, len_, nullptr, [&](std::size_t a) { return &D_[a * len_]; });
        block_gram(set, th);
    }
    const std::vector<double>& directions() const { return D_; }
    std::size_t row_length() const { return len_; }
    double unit() const { return unit_; }

    const BlockGram& gram() const { return gram_; }

    // F (the smooth field at th) <- its minimal-norm Clarke combination over the sliding set Z.
    // Two-layer networks: s minimises |F0 + D s| without bounds, which makes F tangent to every surface in Z.
    // When the surfaces are dependent (e.g. a neuron pinned at w = 0) s is not unique: take the box-constrained
    // minimiser, whose velocity is the minimal-norm subgradient, and watch the normal velocities for the exit.
    // The solution is kept until the next call (its storage too: a stage's velocity allocates nothing).
    const SlideSolution& add(const std::vector<std::size_t>& Z, const double* th, const double* slopes, double* F) {
        if (!pb_.model.linear_switches()) {
            sol_.s.clear(), sol_.degenerate = true, sol_.error = hull_.solve(Z, th, slopes, F);
            return sol_;
        }
        const std::size_t k = Z.size(), p = pb_.p;
        slope_directions(Z, th, slopes);
        std::vector<double>& b = dots_;
        directions_dot(F, b);
        for (double& v : b) v = -v * unit_;
        sol_.error = 0.0;
        sol_.degenerate = gram_.solve(b, sol_.s) < k;
        if (sol_.degenerate) {
            for (double& v : b) v = -v;
            sol_.s = gram_.box(b, norm2(F, p) * unit_);
        }
        add_directions(sol_.s, F);
        return sol_;
    }

    // out <- D_a . F for every row, each on its block
    void directions_dot(const double* F, std::vector<double>& out) const {
        out.resize(offset_.size());
        for (std::size_t a = 0; a < out.size(); ++a) out[a] = dot(&D_[a * len_], F + offset_[a], len_);
    }

    // F += sum_a s_a D_a, out of the weight unit: a power of two, whose inverse multiplies exactly (a division per
    // entry cost more than the rest of the velocity's own work)
    void add_directions(const std::vector<double>& s, double* F) const {
        const double inverse = 1.0 / unit_;
        for (std::size_t a = 0; a < s.size(); ++a)
            for (std::size_t q = 0; q < len_; ++q) F[offset_[a] + q] += s[a] * D_[a * len_ + q] * inverse;
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

    const Problem& pb_;
    Field& field_;
    std::size_t block_;  // the model's unit block length (0: none)
    std::vector<double> D_;            // slope directions (block models: on their unit's block)
    std::size_t len_ = 0;              // their length
    std::vector<std::size_t> offset_;  // where each starts in theta
    BlockGram gram_;                   // their Gram matrix
    std::vector<std::size_t> labels_;  // the unit of each row
    std::vector<double> scales_;       // block models: each row's multiple of its switch's normal
    struct UnitNormals {
        std::vector<std::size_t> switches;
        NormalGram normals;
    };
    std::vector<UnitNormals> normals_;  // block models, per unit: its last switches' normals' Gram matrix (factored)
    Hull hull_;
    SlideSolution sol_;          // add()'s
    std::vector<double> dots_;  // add()'s workspace
    double unit_ = 1.0;  // the field's weight unit at the last solve (directions and Gram matrix are scaled by it)
};

}  // namespace fastflow
