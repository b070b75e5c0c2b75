// Gram matrices of switch directions that split into independent blocks. In a two-layer net the normal and the
// slope direction of switch (i, j) touch only unit j's weights, so rows of different units are orthogonal: the
// Gram matrix is block diagonal up to a permutation, and every solve splits into one small solve per unit. The
// cost is then that of the units' own blocks, not of the whole sliding set.
#pragma once
#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

#include "boxqp.hpp"
#include "linalg.hpp"

namespace fastflow {

// The Gram matrix of fixed normals and its factor, for blocks that are its rescalings (BlockGram::assign_scaled)
struct NormalGram {
    std::vector<double> gram;
    PsdFactor factor;
};

class BlockGram {
public:
    // the Gram matrix of rows a < k (row(a): len doubles), grouped by labels[a] (nullptr: one block); rows of
    // different labels must be orthogonal
    template <class Row>
    void assign(std::size_t k, std::size_t len, const std::size_t* labels, Row&& row) {
        group(k, labels);
        bases_.assign(members_.size(), nullptr);
        for (std::size_t g = 0; g < members_.size(); ++g) {
            const std::vector<std::size_t>& rows = members_[g];
            const std::size_t m = rows.size();
            std::vector<double>& Q = blocks_[g];
            Q.assign(m * m, 0.0);
            for (std::size_t a = 0; a < m; ++a)
                for (std::size_t b = 0; b <= a; ++b) Q[a * m + b] = Q[b * m + a] = dot(row(rows[a]), row(rows[b]), len);
        }
    }

    // The same for rows a = scale[a] n_a: Q = diag(scale) N diag(scale), where normals(rows) gives the Gram matrix
    // N of the normals of one label's rows (in increasing row order, as members_) with its factor, which solves
    // (NormalGram::factor; it must stay as it is until this BlockGram's next assignment)
    template <class Normals>
    void assign_scaled(std::size_t k, const std::size_t* labels, const double* scale, Normals&& normals) {
        group(k, labels);
        bases_.resize(members_.size());
        scale_.assign(scale, scale + k);
        for (std::size_t g = 0; g < members_.size(); ++g) bases_[g] = &normals(members_[g]);
        rescaled_.assign(members_.size(), false);  // the blocks are formed when a solve needs them
    }

    // the blocks of a dense k x k matrix Q (row-major) that is zero between rows of different labels
    void assign_dense(const std::vector<double>& Q, std::size_t k, const std::size_t* labels) {
        group(k, labels);
        bases_.assign(members_.size(), nullptr);
        for (std::size_t g = 0; g < members_.size(); ++g) {
            const std::vector<std::size_t>& rows = members_[g];
            const std::size_t m = rows.size();
            blocks_[g].resize(m * m);
            for (std::size_t a = 0; a < m; ++a)
                for (std::size_t b = 0; b < m; ++b) blocks_[g][a * m + b] = Q[rows[a] * k + rows[b]];
        }
    }

    std::size_t size() const { return k_; }

    // x with Q x = b, block by block (solve_psd: least squares where a block is singular); returns the rank. A
    // block diag(c) N diag(c) with every c_a != 0 is solved as N y = b / c, x = y / c with N's kept factor (the
    // same pivots and rank: both are read off the matrices scaled to unit diagonal, equal up to signs).
    std::size_t solve(const std::vector<double>& b, std::vector<double>& x) const {
        x.assign(k_, 0.0);
        std::size_t rank = 0;
        for (std::size_t g = 0; g < members_.size(); ++g) {
            const std::vector<std::size_t>& rows = members_[g];
            gather(g, b, b_part_);
            x_part_.resize(rows.size());
            const auto unscaled = [&](std::size_t a) { return scale_[a] == 0.0; };
            if (bases_[g] != nullptr && std::none_of(rows.begin(), rows.end(), unscaled)) {
                for (std::size_t a = 0; a < rows.size(); ++a) b_part_[a] /= scale_[rows[a]];
                bases_[g]->factor.solve(b_part_.data(), x_part_.data());
                for (std::size_t a = 0; a < rows.size(); ++a) x_part_[a] /= scale_[rows[a]];
                rank += bases_[g]->factor.rank();
            } else {
                rank += solve_psd(block(g), b_part_, b_part_.size(), x_part_);
            }
            scatter(g, x_part_, x);
        }
        return rank;
    }

    // box_qp's minimiser over [0,1]^k, block by block (the problem separates)
    std::vector<double> box(const std::vector<double>& b, double f0_norm) const {
        std::vector<double> s(k_, 0.0), bb;
        for (std::size_t g = 0; g < members_.size(); ++g) {
            gather(g, b, bb);
            scatter(g, box_qp(block(g), bb, bb.size(), f0_norm), s);
        }
        return s;
    }

private:
    // members_ <- the rows of each label, in increasing row order; blocks in increasing label order. Every field
    // evaluation asks again, mostly with the labels of the last one (the sliding set changes at events only):
    // then the grouping stands, and the vectors keep their storage otherwise.
    void group(std::size_t k, const std::size_t* labels) {
        const bool same = k == k_ && last_labels_.size() == (labels ? k : 0) &&
                          (!labels || std::equal(labels, labels + k, last_labels_.begin()));
        if (same) return;
        last_labels_.assign(labels, labels ? labels + k : labels);
        k_ = k;
        order_.resize(k);
        for (std::size_t a = 0; a < k; ++a) order_[a] = {labels ? labels[a] : 0, a};
        std::sort(order_.begin(), order_.end());
        std::size_t groups = 0;
        for (std::size_t a = 0; a < k; ++a) {
            if (a == 0 || order_[a].first != order_[a - 1].first) {
                if (members_.size() == groups) members_.emplace_back();
                members_[groups++].clear();
            }
            members_[groups - 1].push_back(order_[a].second);
        }
        members_.resize(groups);
        blocks_.resize(groups);
    }

    // block g of the matrix; assign_scaled's are formed here, once
    const std::vector<double>& block(std::size_t g) const {
        if (bases_[g] == nullptr || rescaled_[g]) return blocks_[g];
        const std::vector<std::size_t>& rows = members_[g];
        const std::size_t m = rows.size();
        const std::vector<double>& N = bases_[g]->gram;
        std::vector<double>& Q = blocks_[g];
        Q.resize(m * m);
        for (std::size_t a = 0; a < m; ++a)
            for (std::size_t b = 0; b < m; ++b) Q[a * m + b] = scale_[rows[a]] * scale_[rows[b]] * N[a * m + b];
        rescaled_[g] = true;
        return Q;
    }

    void gather(std::size_t g, const std::vector<double>& full, std::vector<double>& part) const {
        part.resize(members_[g].size());
        for (std::size_t a = 0; a < part.size(); ++a) part[a] = full[members_[g][a]];
    }

    void scatter(std::size_t g, const std::vector<double>& part, std::vector<double>& full) const {
        for (std::size_t a = 0; a < part.size(); ++a) full[members_[g][a]] = part[a];
    }

    std::size_t k_ = 0;
    std::vector<std::size_t> last_labels_;                   // group()'s last labels (empty: none given)
    std::vector<std::pair<std::size_t, std::size_t>> order_;  // (label, row), sorted
    std::vector<std::vector<std::size_t>> members_;
    mutable std::vector<std::vector<double>> blocks_;  // (assign_scaled's: formed by block())
    mutable std::vector<bool> rescaled_;                // per block of assign_scaled: formed
    std::vector<const NormalGram*> bases_;  // per block, the Gram matrix it rescales (assign_scaled), or none
    std::vector<double> scale_;             // assign_scaled's rescalings
    mutable std::vector<double> b_part_, x_part_;  // a block's share of a solve
};

}  // namespace fastflow
