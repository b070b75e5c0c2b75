// The general class N of the margin paper (section 2): depth m, per-layer index maps (0 = structural zero,
// k > 0 = parameter k of that layer; a repeated k is a shared weight), ReLU or linear hidden layers, any d_out,
// optional hidden biases and a linear skip connection x -> U x (non-homogeneous extensions).
//
// theta = [layer 1 parameters, ..., layer m parameters, hidden biases (layer by layer), U (d_out x d_in)].
// Switch k = sample * n_hidden + unit, units numbered layer by layer.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "dual.hpp"
#include "model.hpp"

namespace fastflow {

class LayeredNetwork final : public Model {
public:
    // sizes = {d_0 = d_in, d_1, ..., d_m = d_out}; maps[l] has sizes[l+1] x sizes[l] entries (row-major)
    LayeredNetwork(std::vector<std::size_t> sizes, std::vector<std::vector<long>> maps, bool relu, bool bias,
                   bool skip)
        : sizes_(std::move(sizes)), maps_(std::move(maps)), relu_(relu), bias_(bias), skip_(skip) {
        if (sizes_.size() < 3) throw std::invalid_argument("a network needs at least one hidden layer");
        for (std::size_t s : sizes_)
            if (s == 0) throw std::invalid_argument("layer sizes must be positive");
        if (maps_.size() != depth()) throw std::invalid_argument("maps must hold one index map per layer");
        std::size_t offset = 0;
        for (std::size_t l = 0; l < depth(); ++l) {
            if (maps_[l].size() != sizes_[l + 1] * sizes_[l])
                throw std::invalid_argument("index map " + std::to_string(l) + " has the wrong size");
            long count = 0;
            for (long k : maps_[l]) {
                if (k < 0) throw std::invalid_argument("index maps hold 0 (absent) or parameter numbers k > 0");
                count = std::max(count, k);
            }
            offsets_.push_back(offset);
            offset += static_cast<std::size_t>(count);
        }
        bias_offset_ = offset;
        std::size_t hidden = 0;
        for (std::size_t l = 1; l < depth(); ++l) {
            unit_offset_.push_back(hidden);
            hidden += sizes_[l];
        }
        hidden_total_ = hidden;
        skip_offset_ = bias_offset_ + (bias_ ? hidden : 0);
        n_params_ = skip_offset_ + (skip_ ? sizes_.back() * sizes_.front() : 0);
        for (std::size_t u = 0; u < hidden_total_; ++u) {
            std::size_t l = 0;
            while (l + 1 < unit_offset_.size() && unit_offset_[l + 1] <= u) ++l;
            unit_layer_.push_back(l);
        }
        // every weight on one edge, no bias, no skip: then each unit's balance is conserved
        balanced_ = !bias_ && !skip_;
        for (std::size_t l = 0; l < depth(); ++l) {
            const long count = *std::max_element(maps_[l].begin(), maps_[l].end());
            std::vector<bool> seen(static_cast<std::size_t>(count) + 1);
            for (long k : maps_[l]) {
                if (k && seen[static_cast<std::size_t>(k)]) balanced_ = false;  // a parameter shared by several edges
                seen[static_cast<std::size_t>(k)] = true;
            }
        }
    }

    std::size_t depth() const { return sizes_.size() - 1; }
    // a unit's row of its layer's map, when no weight is shared (nor a bias or a skip added)
    std::vector<std::size_t> incoming_row(std::size_t u) const override {
        std::vector<std::size_t> out;
        if (!balanced_) return out;
        const std::size_t l = unit_layer_[u], r = u - unit_offset_[l], width = sizes_[l];
        for (std::size_t c = 0; c < width; ++c)
            if (const long k = maps_[l][r * width + c]) out.push_back(offsets_[l] + static_cast<std::size_t>(k) - 1);
        return out;
    }
    std::size_t n_params() const override { return n_params_; }
    std::size_t d_in() const override { return sizes_.front(); }
    std::size_t d_out() const override { return sizes_.back(); }
    std::size_t n_hidden() const override { return relu_ ? hidden_total_ : 0; }
    std::size_t scratch_size() const override { return 3 * (hidden_total_ + sizes_.back()) + 2 * widest(); }
    bool linear_switches() const override { return depth() == 2; }
    // a unit of hidden layer l (1-based) is multilinear in the weights of layers 1..l (and the biases)
    std::size_t switch_poly_degree(std::size_t deg) const override { return (depth() - 1) * deg; }

    // The pre-activation polynomials by exact polynomial products layer by layer (no sampling: a sign that
    // leaves and returns inside a step is then isolated like any other root).
    void preactivation_polynomials(const double* coef, std::size_t deg, const double* X, std::size_t n,
                                   const double* slopes, double* out) const override {
        if (!relu_) return;
        const std::size_t stride = switch_poly_degree(deg) + 1;
        std::vector<double> act(hidden_total_ * stride);
        for (std::size_t i = 0; i < n; ++i) {
            const double* x = X + i * d_in();
            double* pre = out + i * hidden_total_ * stride;
            for (std::size_t l = 1; l < depth(); ++l) {
                const std::size_t rows = sizes_[l], cols = sizes_[l - 1], in_deg = (l - 1) * deg;
                for (std::size_t r = 0; r < rows; ++r) {
                    const std::size_t u = unit_offset_[l - 1] + r;
                    double* p = pre + u * stride;
                    std::fill(p, p + stride, 0.0);
                    for (std::size_t c = 0; c < cols; ++c) {
                        const long k = maps_[l - 1][r * cols + c];
                        if (!k) continue;
                        const std::size_t q = offsets_[l - 1] + static_cast<std::size_t>(k - 1);
                        const double* in = l == 1 ? nullptr : act.data() + (unit_offset_[l - 2] + c) * stride;
                        for (std::size_t m = 0; m <= deg; ++m) {
                            const double w = coef[m * n_params_ + q];
                            if (w == 0.0) continue;
                            if (!in) {
                                p[m] += w * x[c];
                                continue;
                            }
                            for (std::size_t e = 0; e <= in_deg; ++e) p[m + e] += w * in[e];
                        }
                    }
                    if (bias_)
                        for (std::size_t m = 0; m <= deg; ++m) p[m] += coef[m * n_params_ + bias_offset_ + u];
                    const double slope = slopes[i * hidden_total_ + u];
                    double* a = act.data() + u * stride;
                    for (std::size_t e = 0; e < stride; ++e) a[e] = slope * p[e];
                }
            }
        }
    }
    int switch_layer(std::size_t unit) const override { return static_cast<int>(unit_layer_[unit]); }
    std::size_t switch_neuron(std::size_t unit) const override {
        return unit - unit_offset_[unit_layer_[unit]];
    }

    void forward(const double* theta, const double* X, std::size_t n, const double* slopes, double* out,
                 double* scratch) const override {
        double* h = scratch;  // pre-activations of every hidden unit
        for (std::size_t i = 0; i < n; ++i) {
            run_sample(theta, X + i * d_in(), slopes ? slopes + i * n_hidden() : nullptr, h, out + i * d_out(),
                       scratch + hidden_total_);
        }
    }

    void vjp(const double* theta, const double* X, std::size_t n, const double* slopes, const double* G,
             double* grad, double* scratch) const override {
        for (std::size_t q = 0; q < n_params_; ++q) grad[q] = 0.0;
        double* h = scratch;
        double* a = scratch + hidden_total_;                 // activations (hidden units)
        double* out = a + hidden_total_;
        double* back = out + d_out();                        // d/d(pre-activation) of every hidden unit
        for (std::size_t i = 0; i < n; ++i) {
            const double* x = X + i * d_in();
            const double* sl = slopes ? slopes + i * n_hidden() : nullptr;
            run_sample(theta, x, sl, h, out, a);
            backprop(theta, x, sl, a, G + i * d_out(), back, grad);
        }
    }

    void preactivations(const double* theta, const double* X, std::size_t n, const double* slopes, double* h,
                        double* scratch) const override {
        if (!relu_) return;
        for (std::size_t i = 0; i < n; ++i)
            run_sample(theta, X + i * d_in(), slopes ? slopes + i * n_hidden() : nullptr, h + i * hidden_total_,
                       scratch, scratch + d_out());
    }

    // d F / d s_k = back_k(G) * grad_theta h_k, with back_k the backpropagated signal reaching unit k
    void slope_direction(const double* theta, const double* X, const double* slopes, std::size_t k, const double* G,
                         double* out) const override {
        const std::size_t i = k / hidden_total_, unit = k % hidden_total_;
        const double signal = back_to_activation(theta, slopes + i * hidden_total_, G + i * d_out(), unit);
        switch_normal(theta, X, slopes, k, out);
        for (std::size_t q = 0; q < n_params_; ++q) out[q] *= signal;
    }

    void switch_normal(const double* theta, const double* X, const double* slopes, std::size_t k,
                       double* out) const override {
        const std::size_t i = k / hidden_total_, unit = k % hidden_total_;
        const double* x = X + i * d_in();
        const double* sl = slopes + i * hidden_total_;
        std::vector<double> h(hidden_total_), a(hidden_total_), o(d_out()), back(hidden_total_, 0.0);
        run_sample(theta, x, sl, h.data(), o.data(), a.data());
        for (std::size_t q = 0; q < n_params_; ++q) out[q] = 0.0;
        back[unit] = 1.0;
        backprop_from(theta, x, sl, a.data(), unit_layer_[unit], back.data(), out);
    }

    double switch_scale(const double* theta, const double* X, const double* slopes, std::size_t k) const override {
        const std::size_t i = k / hidden_total_;
        std::vector<double> s(hidden_total_);
        sample_scales(theta, X + i * d_in(), slopes + i * hidden_total_, s.data());
        return s[k % hidden_total_];
    }
    void switch_scales(const double* theta, const double* X, std::size_t n, const double* slopes,
                       double* out) const override {
        for (std::size_t i = 0; i < n; ++i)
            sample_scales(theta, X + i * d_in(), slopes + i * hidden_total_, out + i * hidden_total_);
    }

    // Dead signal paths: the first hidden layer whose input is zero for sample x under the slopes (a zero sample,
    // or every unit below it inactive or on its surface, slope 0; no bias), or INT_MAX. An active unit keeps the
    // path alive even where its pre-activation rounds to exactly 0: held at its surface by a tangent velocity it
    // does so at some states and not at their neighbours, and the sliding velocity jumped between them.
    int first_dead_layer(const double* x, const double* slopes) const override {
        if (!relu_ || bias_) return std::numeric_limits<int>::max();
        auto zero = [](double v) { return v == 0.0; };
        if (std::all_of(x, x + d_in(), zero)) return 0;
        for (std::size_t hl = 1; hl + 1 < depth(); ++hl) {
            const double* below = slopes + unit_offset_[hl - 1];
            if (std::all_of(below, below + sizes_[hl], zero)) return static_cast<int>(hl);
        }
        return std::numeric_limits<int>::max();
    }

    // sign (n_hidden) <- +-1 or 0 for the units of hidden layers >= `layer`: the signs their pre-activations take
    // when the units `seeds` of the layer below, alone nonzero, grow together from 0 (propagated through the ReLUs)
    void dead_path_signs(const double* theta, std::size_t layer, const std::vector<std::size_t>& seeds,
                         double* sign) const override {
        if (layer == 0) return;  // a zero sample: nothing below revives it
        std::vector<double> v(hidden_total_, 0.0);
        for (std::size_t u : seeds) v[u] = 1.0;
        for (std::size_t hl = layer; hl + 1 < depth(); ++hl)
            for (std::size_t r = 0; r < sizes_[hl + 1]; ++r) {
                double g = 0.0;
                for (std::size_t c = 0; c < sizes_[hl]; ++c)
                    g += weight(theta, hl, r, c) * v[unit_offset_[hl - 1] + c];
                const std::size_t u = unit_offset_[hl] + r;
                sign[u] = g > 0.0 ? 1.0 : g < 0.0 ? -1.0 : 0.0;
                v[u] = std::max(g, 0.0);
            }
    }

    // The linear pieces of a dead path (its units' slopes, one n_hidden row per piece: 1 or 0 for the units of
    // layers >= layer, the rest 0) as the seeds' outputs grow from 0 in every ratio: its Clarke corners. The path's
    // output is then a positively homogeneous piecewise-linear function of the seeds' outputs. One seed: one piece.
    // Two: the pieces met along a = (1 - s, s), s in [0, 1], on which every pre-activation is piecewise linear in s,
    // swept from kink to kink. More: the union over pairs of seeds (the pieces that meet the cone's 2-faces; a
    // piece strictly inside it is missed). A unit held at 0 (its weights from the growing units exactly 0) is on its
    // surface: both its sides are pieces.
    void dead_path_pieces(const double* theta, std::size_t layer, const std::vector<std::size_t>& seeds,
                          std::vector<std::vector<double>>& pieces) const override {
        pieces.clear();
        if (layer == 0 || seeds.empty()) return;
        if (seeds.size() == 1) return sweep_pieces(theta, layer, seeds[0], seeds[0], pieces);
        for (std::size_t a = 0; a < seeds.size(); ++a)
            for (std::size_t b = a + 1; b < seeds.size(); ++b) sweep_pieces(theta, layer, seeds[a], seeds[b], pieces);
    }

    // p passes on dual numbers (about 3 real operations each) over n samples, each pass about 6 p real ones
    double hessian_flops(std::size_t n) const override {
        return 18.0 * static_cast<double>(n) * static_cast<double>(n_params_) * static_cast<double>(n_params_);
    }

    // Rows q of the Hessian, kLanes at a time: the passes on dual numbers with theta moved along each e_q (every
    // sample's G fixed)
    void add_hessian_rows(const double* theta, const double* X, std::size_t n, const double* slopes, const double* G,
                          const std::vector<std::size_t>& rows, double* J) const override {
        constexpr std::size_t kLanes = 8;
        using D = Dual<kLanes>;
        const std::size_t p = n_params_, H = hidden_total_, d = d_in();
        std::vector<D> th(theta, theta + p), x(X, X + n * d), h(H), a(H), out(d_out()), back(H), grad(p);
        for (std::size_t first = 0; first < rows.size(); first += kLanes) {
            const std::size_t lanes = std::min(kLanes, rows.size() - first);
            for (std::size_t k = 0; k < lanes; ++k) th[rows[first + k]].d[k] = 1.0;
            std::fill(grad.begin(), grad.end(), D());
            for (std::size_t i = 0; i < n; ++i) {
                const double* sl = slopes ? slopes + i * n_hidden() : nullptr;
                run_sample(th.data(), &x[i * d], sl, h.data(), out.data(), a.data());
                backprop(th.data(), &x[i * d], sl, a.data(), G + i * d_out(), back.data(), grad.data());
            }
            for (std::size_t k = 0; k < lanes; ++k) {
                th[rows[first + k]].d[k] = 0.0;
                for (std::size_t r = 0; r < p; ++r) J[(first + k) * p + r] += grad[r].d[k];
            }
        }
    }

    // Per hidden unit ||incoming weights||^2 - ||outgoing weights||^2: its homogeneous (ReLU or linear) activation
    // makes sum_i h_i dL/dh_i = sum_i a_i dL/da_i, so the flow moves both sums of squares alike, for any slopes.
    std::size_t n_balances() const override { return balanced_ ? hidden_total_ : 0; }
    void balances(const double* theta, double* balance, double* scale) const override {
        for (std::size_t l = 1; l < depth(); ++l)
            for (std::size_t r = 0; r < sizes_[l]; ++r) {
                double in = 0.0, out = 0.0;
                for (std::size_t c = 0; c < sizes_[l - 1]; ++c) {
                    const double w = weight(theta, l - 1, r, c);
                    in += w * w;
                }
                for (std::size_t o = 0; o < sizes_[l + 1]; ++o) {
                    const double w = weight(theta, l, o, r);
                    out += w * w;
                }
                const std::size_t u = unit_offset_[l - 1] + r;
                balance[u] = in - out, scale[u] = in + out;
            }
    }

private:
    // pieces += the dead path's pieces along a = (1 - s, s) on seeds (a, b) (a == b: that seed alone), new ones only.
    // A unit at 0 at an end of the segment (its weight from the other seed exactly 0) has pieces on both sides
    // there: a perturbation of that weight moves its kink inside. So the sweep starts just before s = 0 and ends
    // just after s = 1.
    void sweep_pieces(const double* theta, std::size_t layer, std::size_t a, std::size_t b,
                      std::vector<std::vector<double>>& pieces) const {
        constexpr int max_kinks = 256;
        PieceScratch scratch{std::vector<double>(hidden_total_), std::vector<double>(hidden_total_),
                             std::vector<double>(hidden_total_), {}};
        add_piece(theta, layer, a, b, 0.0, false, scratch, pieces);
        double s = 0.0;
        for (int kink = 0; kink <= max_kinks && s < 1.0; ++kink)
            s = add_piece(theta, layer, a, b, s, true, scratch, pieces);
        add_piece(theta, layer, a, b, 1.0, true, scratch, pieces);
    }

    struct PieceScratch {
        std::vector<double> v, dv, slope;  // the pre-activations along the segment, their slopes in s, the piece
        std::vector<std::size_t> flat;
    };

    // pieces += the piece at s of the sweep on seeds (a, b): a unit at its kink there takes the side g takes just
    // after s (`after`) or just before, and a unit at 0 along the segment there (flat: g and its slope in s zero to
    // rounding) either side. Returns the next kink after s (1: none).
    double add_piece(const double* theta, std::size_t layer, std::size_t a, std::size_t b, double s, bool after,
                     PieceScratch& scratch, std::vector<std::vector<double>>& pieces) const {
        constexpr std::size_t max_flat = 6;  // flat units whose sides are enumerated
        constexpr double rounding = 64.0 * std::numeric_limits<double>::epsilon();
        auto& [v, dv, slope, flat] = scratch;
        std::fill(v.begin(), v.end(), 0.0), std::fill(dv.begin(), dv.end(), 0.0);
        std::fill(slope.begin(), slope.end(), 0.0);
        flat.clear();
        v[a] += 1.0 - s, dv[a] -= 1.0, v[b] += s, dv[b] += 1.0;
        double next = 1.0;
        for (std::size_t hl = layer; hl + 1 < depth(); ++hl)
            for (std::size_t r = 0; r < sizes_[hl + 1]; ++r) {
                double g = 0.0, dg = 0.0, size = 0.0;
                for (std::size_t c = 0; c < sizes_[hl]; ++c) {
                    const double w = weight(theta, hl, r, c);
                    const std::size_t in = unit_offset_[hl - 1] + c;
                    g += w * v[in], dg += w * dv[in], size += std::abs(w) * (std::abs(v[in]) + std::abs(dv[in]));
                }
                // zero to rounding of the terms along the segment (a weight from a seed at the rounding of 0 is 0)
                const bool zero = std::abs(g) <= rounding * size, level = zero && std::abs(dg) <= rounding * size;
                const bool up = level ? false : zero ? (dg > 0.0) == after : g > 0.0;
                const std::size_t u = unit_offset_[hl] + r;
                if (level) flat.push_back(u);
                slope[u] = up ? 1.0 : 0.0, v[u] = up ? g : 0.0, dv[u] = up ? dg : 0.0;
                if (!zero && dg != 0.0 && (g > 0.0) != (dg > 0.0)) next = std::min(next, s + std::abs(g / dg));
            }
        // a flat unit passes on nothing whatever its side: every choice of their sides is a piece
        if (flat.size() > max_flat) flat.clear();
        for (std::uint64_t sides = 0; sides < (std::uint64_t{1} << flat.size()); ++sides) {
            for (std::size_t k = 0; k < flat.size(); ++k) slope[flat[k]] = (sides >> k) & 1U ? 1.0 : 0.0;
            if (std::find(pieces.begin(), pieces.end(), slope) == pieces.end()) pieces.push_back(slope);
        }
        return next;
    }

    std::size_t widest() const {
        std::size_t w = 0;
        for (std::size_t s : sizes_) w = std::max(w, s);
        return w;
    }

    template <class T>
    T weight(const T* theta, std::size_t l, std::size_t r, std::size_t c) const {
        const long k = maps_[l][r * sizes_[l] + c];
        return k == 0 ? T(0.0) : theta[offsets_[l] + static_cast<std::size_t>(k - 1)];
    }

    // Rounding scales of one sample's pre-activations, propagated: a unit sums |w| (|a| + slope * scale) over its
    // inputs, so that a unit fed by units at rounding level (one that just reached its surface) inherits their
    // rounding instead of reading it as a sign.
    void sample_scales(const double* theta, const double* x, const double* slopes, double* s) const {
        std::vector<double> h(hidden_total_), a(hidden_total_), o(d_out());
        run_sample(theta, x, slopes, h.data(), o.data(), a.data());
        for (std::size_t hl = 0; hl + 1 < depth(); ++hl)
            for (std::size_t r = 0; r < sizes_[hl + 1]; ++r) {
                const std::size_t u = unit_offset_[hl] + r;
                s[u] = bias_ ? std::abs(theta[bias_offset_ + u]) : 0.0;
                for (std::size_t c = 0; c < sizes_[hl]; ++c) {
                    const double w = std::abs(weight(theta, hl, r, c));
                    if (hl == 0) {
                        s[u] += w * std::abs(x[c]);
                        continue;
                    }
                    const std::size_t v = unit_offset_[hl - 1] + c;
                    s[u] += w * (std::abs(a[v]) + (relu_ ? slopes[v] : 1.0) * s[v]);
                }
            }
    }

    // forward pass of one sample: h (hidden pre-activations), out (d_out), a (hidden activations). T = Dual: along
    // directions of theta (see add_hessian_rows).
    template <class T>
    void run_sample(const T* theta, const T* x, const double* slopes, T* h, T* out, T* a) const {
        const T* in = x;
        for (std::size_t l = 1; l <= depth(); ++l) {
            const std::size_t rows = sizes_[l], cols = sizes_[l - 1];
            const bool hidden = l < depth();
            for (std::size_t r = 0; r < rows; ++r) {
                T s = 0.0;
                for (std::size_t c = 0; c < cols; ++c) s += weight(theta, l - 1, r, c) * in[c];
                if (hidden) {
                    const std::size_t u = unit_offset_[l - 1] + r;
                    if (bias_) s += theta[bias_offset_ + u];
                    h[u] = s;
                    // no slopes given: the value of the network, sigma'(h) = 1[h > 0]
                    a[u] = !relu_ ? s : slopes ? slopes[u] * s : (s > 0.0 ? s : T(0.0));
                } else {
                    if (skip_)
                        for (std::size_t c = 0; c < d_in(); ++c) s += theta[skip_offset_ + r * d_in() + c] * x[c];
                    out[r] = s;
                }
            }
            if (hidden) in = a + unit_offset_[l - 1];
        }
    }

    // gradient of G . Phi; back receives d/dh of every hidden unit
    template <class T>
    void backprop(const T* theta, const T* x, const double* slopes, const T* a, const double* G, T* back,
                  T* grad) const {
        const std::size_t m = depth();
        const T* last_in = m == 1 ? x : a + unit_offset_[m - 2];
        for (std::size_t r = 0; r < d_out(); ++r) {
            if (G[r] == 0.0) continue;
            for (std::size_t c = 0; c < sizes_[m - 1]; ++c) {
                const long k = maps_[m - 1][r * sizes_[m - 1] + c];
                if (k) grad[offsets_[m - 1] + static_cast<std::size_t>(k - 1)] += G[r] * last_in[c];
            }
            if (skip_)
                for (std::size_t c = 0; c < d_in(); ++c) grad[skip_offset_ + r * d_in() + c] += G[r] * x[c];
        }
        for (std::size_t u = 0; u < hidden_total_; ++u) back[u] = 0.0;
        const std::size_t top = unit_offset_[m - 2];
        for (std::size_t c = 0; c < sizes_[m - 1]; ++c) {
            T s = 0.0;
            for (std::size_t r = 0; r < d_out(); ++r) s += G[r] * weight(theta, m - 1, r, c);
            back[top + c] = relu_ ? s * slopes[top + c] : s;
        }
        backprop_from(theta, x, slopes, a, m - 2, back, grad);
    }

    // given back (d/dh) on hidden layer `layer` (0-based hidden index), accumulate grad through it and below
    template <class T>
    void backprop_from(const T* theta, const T* x, const double* slopes, const T* a, std::size_t layer, T* back,
                       T* grad) const {
        for (std::size_t hl = layer + 1; hl-- > 0;) {
            const std::size_t l = hl + 1;  // weight layer l maps layer l-1 -> hidden layer hl
            const std::size_t rows = sizes_[l], cols = sizes_[l - 1];
            const T* in = hl == 0 ? x : a + unit_offset_[hl - 1];
            for (std::size_t r = 0; r < rows; ++r) {
                const std::size_t u = unit_offset_[hl] + r;
                const T d = back[u];
                if (!nonzero(d)) continue;
                if (bias_) grad[bias_offset_ + u] += d;
                for (std::size_t c = 0; c < cols; ++c) {
                    const long k = maps_[l - 1][r * cols + c];
                    if (k) grad[offsets_[l - 1] + static_cast<std::size_t>(k - 1)] += d * in[c];
                }
                if (hl > 0)
                    for (std::size_t c = 0; c < cols; ++c) {
                        const std::size_t below = unit_offset_[hl - 1] + c;
                        const T w = weight(theta, l - 1, r, c);
                        if (nonzero(w)) back[below] += d * w * (relu_ ? slopes[below] : 1.0);
                    }
            }
        }
    }

    // d (G . Phi) / d a_unit: the signal that reaches unit `unit`'s activation from above
    double back_to_activation(const double* theta, const double* slopes, const double* G, std::size_t unit) const {
        const std::size_t m = depth();
        std::vector<double> back(hidden_total_, 0.0);
        // d/d a of the last hidden layer
        const std::size_t top = unit_offset_[m - 2];
        for (std::size_t c = 0; c < sizes_[m - 1]; ++c)
            for (std::size_t r = 0; r < d_out(); ++r) back[top + c] += G[r] * weight(theta, m - 1, r, c);
        for (std::size_t hl = m - 2; hl > unit_layer_[unit]; --hl) {
            // from d/da on hidden layer hl to d/da on hidden layer hl-1
            const std::size_t l = hl + 1;
            for (std::size_t r = 0; r < sizes_[l]; ++r) {
                const std::size_t u = unit_offset_[hl] + r;
                const double d = back[u] * (relu_ ? slopes[u] : 1.0);
                if (d == 0.0) continue;
                for (std::size_t c = 0; c < sizes_[l - 1]; ++c)
                    back[unit_offset_[hl - 1] + c] += d * weight(theta, l - 1, r, c);
            }
        }
        return back[unit];
    }

    std::vector<std::size_t> sizes_;
    std::vector<std::vector<long>> maps_;
    bool relu_, bias_, skip_, balanced_ = false;
    std::vector<std::size_t> offsets_, unit_offset_, unit_layer_;
    std::size_t bias_offset_ = 0, skip_offset_ = 0, n_params_ = 0, hidden_total_ = 0;
};

}  // namespace fastflow
