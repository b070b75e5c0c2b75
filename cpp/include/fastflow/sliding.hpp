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
#include "geometry.hpp"
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
    Sliding(const Problem& pb, Field& field, SwitchGeometry& geometry)
        : pb_(pb), field_(field), geometry_(geometry), block_(pb.model.unit_block_size()), hull_(pb, field) {}

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
        labels_.resize(k), scales_.resize(k);
        for (std::size_t a = 0; a < k; ++a) {
            if (block_ == 0) {
                pb_.model.slope_direction(th, pb_.X, slopes, set[a], field_.weights(), &D_[a * len_]);
                continue;
            }
            // the slope direction block, a multiple of the switch's fixed normal
            labels_[a] = set[a] % pb_.H;
            offset_[a] = pb_.model.unit_block_offset(labels_[a]);
            const double scale = pb_.model.slope_direction_scale(th, set[a], field_.weights());
            const double* normal = pb_.model.fixed_normal(pb_.X, set[a]);
            for (std::size_t q = 0; q < len_; ++q) D_[a * len_ + q] = scale * normal[q];
            scales_[a] = scale * unit_;
        }
        if (unit_ != 1.0)
            for (double& v : D_) v *= unit_;
        if (block_ == 0) return gram_.assign(k, len_, nullptr, [&](std::size_t a) { return &D_[a * len_]; });
        block_gram(set);
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
        const std::size_t k = offset_.size();
        out.resize(k);
        std::size_t a = 0;
        for (; a + 4 <= k; a += 4) {
            const double* const rows[4] = {&D_[a * len_], &D_[(a + 1) * len_], &D_[(a + 2) * len_],
                                           &D_[(a + 3) * len_]};
            const double* const blocks[4] = {F + offset_[a], F + offset_[a + 1], F + offset_[a + 2],
                                             F + offset_[a + 3]};
            dot4(rows, blocks, len_, &out[a]);
        }
        for (; a < k; ++a) out[a] = dot(&D_[a * len_], F + offset_[a], len_);
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
    // Their directions are multiples of their fixed normals, D_a = c_a n_a (c_a: scales_), so each unit's block is
    // diag(c) N diag(c) with N the Gram matrix of its switches' normals: N and its factor are kept per unit
    // (SwitchGeometry::unit_normals) while that unit's switches stay the same, and only the multiples are new at
    // each evaluation.
    void block_gram(const std::vector<std::size_t>& set) {
        auto unit_normals = [&](const std::vector<std::size_t>& rows) -> const NormalGram& {
            switches_.resize(rows.size());
            for (std::size_t a = 0; a < rows.size(); ++a) switches_[a] = set[rows[a]];
            return geometry_.unit_normals(switches_.data(), switches_.size());
        };
        gram_.assign_scaled(set.size(), labels_.data(), scales_.data(), unit_normals);
    }

    const Problem& pb_;
    Field& field_;
    SwitchGeometry& geometry_;  // block models: the units' normals' Gram matrices
    std::size_t block_;  // the model's unit block length (0: none)
    std::vector<double> D_;            // slope directions (block models: on their unit's block)
    std::size_t len_ = 0;              // their length
    std::vector<std::size_t> offset_;  // where each starts in theta
    BlockGram gram_;                   // their Gram matrix
    std::vector<std::size_t> labels_;  // the unit of each row
    std::vector<double> scales_;       // block models: each row's multiple of its switch's normal
    std::vector<std::size_t> switches_;  // block_gram's: one unit's
    Hull hull_;
    SlideSolution sol_;          // add()'s
    std::vector<double> dots_;  // add()'s workspace
    double unit_ = 1.0;  // the field's weight unit at the last solve (directions and Gram matrix are scaled by it)
};

}  // namespace fastflow
