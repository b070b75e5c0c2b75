// The network interface seen by the integrator, and the depth-2 network.
//
// A model maps theta to outputs with explicit activation slopes (1 = active, 0 = inactive; on a switching surface
// any s in [0,1] is a Clarke subgradient), so the integrator can evaluate every one-sided field and every convex
// combination of them without knowing the architecture. New architectures implement this interface only.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <vector>

#include "gemm.hpp"
#include "linalg.hpp"
#include "small_net.hpp"

namespace fastflow {

class Model {
public:
    virtual ~Model() = default;
    virtual std::size_t n_params() const = 0;
    virtual std::size_t d_in() const = 0;
    virtual std::size_t d_out() const = 0;
    // Switching functions per sample (hidden ReLU units); switch k = sample * n_hidden() + unit.
    virtual std::size_t n_hidden() const = 0;
    virtual std::size_t scratch_size() const = 0;
    // True when every pre-activation is linear in theta: a pre-activation along a polynomial dense output is then
    // a polynomial, whose roots are isolated exactly.
    virtual bool linear_switches() const = 0;
    // Otherwise (deeper units, multilinear in the weights of the layers below): along theta(sigma) =
    // sum_m coef_m sigma^m of degree deg, every pre-activation is a polynomial of degree at most
    // switch_poly_degree(deg); out (n x n_hidden x (that + 1)) receives its coefficients, lowest first.
    virtual std::size_t switch_poly_degree(std::size_t deg) const { return deg; }
    virtual void preactivation_polynomials(const double*, std::size_t, const double*, std::size_t, const double*,
                                           double*) const {
        throw std::logic_error("pre-activation polynomials are only needed for non-linear switches");
    }
    virtual int switch_layer(std::size_t unit) const = 0;
    virtual std::size_t switch_neuron(std::size_t unit) const = 0;

    // out (n x d_out) = Phi(theta; X) with the given slopes (n x n_hidden); no slopes: the value of the network,
    // sigma'(h) = 1[h > 0]
    virtual void forward(const double* theta, const double* X, std::size_t n, const double* slopes, double* out,
                         double* scratch) const = 0;
    // grad (n_params) = sum_i G_i . dPhi_i/dtheta with the given slopes
    virtual void vjp(const double* theta, const double* X, std::size_t n, const double* slopes, const double* G,
                     double* grad, double* scratch) const = 0;
    // the same, right after forward() with the same arguments and scratch: a model may reuse what it left there
    virtual void vjp_after_forward(const double* theta, const double* X, std::size_t n, const double* slopes,
                                   const double* G, double* grad, double* scratch) const {
        vjp(theta, X, n, slopes, G, grad, scratch);
    }
    // h (n x n_hidden): every hidden pre-activation
    virtual void preactivations(const double* theta, const double* X, std::size_t n, const double* slopes,
                                double* h, double* scratch) const = 0;
    // Per-switch quantities; `slopes` are the n x n_hidden slopes in force (the modes of the other switches).
    // out (n_params) = d vjp / d slope_k, for a switch k on its surface (h_k = 0)
    virtual void slope_direction(const double* theta, const double* X, const double* slopes, std::size_t k,
                                 const double* G, double* out) const = 0;
    // Networks whose switches of hidden unit u touch only a block of parameters (two-layer: u's incoming weights)
    // say its length here (0: no such structure), where it starts, and the slope direction restricted to it: then
    // sliding splits into one small problem per unit. Their switches are linear in the block, h_k = n_k . block,
    // with a fixed normal n_k (fixed_normal: unit_block_size() entries, read in place in X).
    virtual std::size_t unit_block_size() const { return 0; }
    virtual std::size_t unit_block_offset(std::size_t) const { return 0; }
    virtual void slope_direction_block(const double*, const double*, std::size_t, const double*, double*) const {}
    virtual const double* fixed_normal(const double*, std::size_t) const { return nullptr; }
    // ... and the slope direction block is this multiple of the normal block (G: the loss weights)
    virtual double slope_direction_scale(const double*, std::size_t, const double*) const { return 0.0; }
    // the parameters of hidden unit u's incoming weights, where each is its own (none: shared, or not such a net)
    virtual std::vector<std::size_t> incoming_row(std::size_t) const { return {}; }
    // Depth-2 nets, for their unstable branches (branches.hpp): the parameter that carries hidden unit `unit`'s
    // activation to output c (npos: no such single weight, as in deeper nets), and out (d_out x (2 deg + 1)) the
    // outputs of the sample x along theta(sigma) = sum_m coef_m sigma^m (degree deg) with its slopes
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);
    virtual std::size_t output_weight(std::size_t, std::size_t) const { return npos; }
    virtual void output_polynomials(const double*, std::size_t, const double*, const double*, double*) const {}
    // out (n_params) = d h_k / d theta, the normal of switching surface k
    virtual void switch_normal(const double* theta, const double* X, const double* slopes, std::size_t k,
                               double* out) const = 0;
    // sum of |terms| of h_k: the scale of its rounding error
    virtual double switch_scale(const double* theta, const double* X, const double* slopes,
                                std::size_t k) const = 0;
    // out (n x n_hidden) = switch_scale of every switch
    virtual void switch_scales(const double* theta, const double* X, std::size_t n, const double* slopes,
                               double* out) const {
        for (std::size_t k = 0; k < n * n_hidden(); ++k) out[k] = switch_scale(theta, X, slopes, k);
    }
    // Dead signal paths (docs/mathematics.md §2): the first hidden layer whose input is zero for the sample x under
    // these slopes, every unit below at slope 0 (INT_MAX: none); its units and all above are then no switches.
    // dead_path_signs: the signs (n_hidden, +-1 or 0) the pre-activations of hidden layers >= layer take when the
    // units `seeds` of the layer below grow from 0.
    virtual int first_dead_layer(const double*, const double*) const {
        return std::numeric_limits<int>::max();
    }
    virtual void dead_path_signs(const double*, std::size_t, const std::vector<std::size_t>&, double*) const {}
    // dead_path_pieces: the slopes of those units on each linear piece of the path as the seeds grow in every ratio
    virtual void dead_path_pieces(const double*, std::size_t, const std::vector<std::size_t>&,
                                  std::vector<std::vector<double>>&) const {}
    // J (rows.size() x n_params, row-major) += the rows `rows` of sum_i G_i . d^2 Phi_i / dtheta^2 with the given
    // slopes
    virtual void add_hessian_rows(const double* theta, const double* X, std::size_t n, const double* slopes,
                                  const double* G, const std::vector<std::size_t>& rows, double* J) const = 0;
    // all of them: J (n_params x n_params)
    void add_weighted_hessian(const double* theta, const double* X, std::size_t n, const double* slopes,
                              const double* G, double* J) const {
        std::vector<std::size_t> all(n_params());
        for (std::size_t q = 0; q < all.size(); ++q) all[q] = q;
        add_hessian_rows(theta, X, n, slopes, G, all, J);
    }
    // its floating-point operations beyond the Gauss-Newton products (0: negligible beside them)
    virtual double hessian_flops(std::size_t) const { return 0.0; }
    // Quantities the exact flow conserves, one per hidden unit of a homogeneous network (||incoming weights||^2 -
    // ||outgoing weights||^2, also while sliding), with their scales (the sums of squares): a check on steps whose
    // error estimate can be fooled (the stiff phase). None by default.
    virtual std::size_t n_balances() const { return 0; }
    virtual void balances(const double*, double*, double*) const {}
};

// each conserved balance's change from theta0 to theta1, and its scale (the larger of its two sums of squares)
struct BalanceChange {
    double change, scale;
};
inline std::vector<BalanceChange> balance_changes(const Model& model, const double* theta0, const double* theta1) {
    const std::size_t m = model.n_balances();
    if (m == 0) return {};  // none conserved (bias, sharing, skip): balances() writes nothing meaningful
    std::vector<double> b0(m), s0(m), b1(m), s1(m);
    model.balances(theta0, b0.data(), s0.data());
    model.balances(theta1, b1.data(), s1.data());
    std::vector<BalanceChange> out(m);
    for (std::size_t j = 0; j < m; ++j) out[j] = {b1[j] - b0[j], std::max(s0[j], s1[j])};
    return out;
}

// How far an implicit step moved the conserved balances, in units of their tolerance atol^2 + rtol scale: the
// largest such change (0 without balances). Their error estimates can miss errors of 1e4 rtol on stiff problems.
inline double balance_excess(const Model& model, const double* theta0, const double* theta1, double rtol,
                             double atol) {
    double excess = 0.0;
    for (const BalanceChange& b : balance_changes(model, theta0, theta1))
        excess = std::max(excess, std::abs(b.change) / (atol * atol + rtol * b.scale));
    return excess;
}

// How far a run moved its conserved balances: max over units of |balance(theta1) - balance(theta0)| relative to
// max(scale(theta0), scale(theta1)) (balance_excess's scale, without the tolerance); NaN without balances.
inline double balance_drift(const Model& model, const double* theta0, const double* theta1) {
    if (model.n_balances() == 0) return std::numeric_limits<double>::quiet_NaN();
    double drift = 0.0;
    for (const BalanceChange& b : balance_changes(model, theta0, theta1))
        if (b.scale > 0.0) drift = std::max(drift, std::abs(b.change) / b.scale);  // scale 0: both balances 0
    return drift;
}

// Phi(x) = W2 sigma(W1 x); theta = [W1 (width x d_in) row-major, W2 (d_out x width) row-major]
class TwoLayer final : public Model {
public:
    TwoLayer(std::size_t d_in, std::size_t width, std::size_t d_out, bool relu)
        : d_(d_in), m_(width), c_(d_out), relu_(relu), small_kernels_(small_net::kernels(d_in, d_out, width)) {
        if (d_in == 0) throw std::invalid_argument("d_in must be positive");
        if (width == 0) throw std::invalid_argument("width must be positive");
        if (d_out == 0) throw std::invalid_argument("d_out must be positive");
        if (small_kernels_) small_samples_ = std::min(panel, small_terms / (m_ * (d_ + c_)));
    }
    std::size_t n_params() const override { return m_ * d_ + c_ * m_; }
    std::size_t d_in() const override { return d_; }
    std::size_t d_out() const override { return c_; }
    std::size_t n_hidden() const override { return relu_ ? m_ : 0; }
    // W1^T (d_in x width) | the W1 gradient (or v), transposed | W2^T (width x d_out) | hidden rows of a panel of
    // samples
    std::size_t scratch_size() const override { return 2 * d_ * m_ + m_ * c_ + panel * m_; }
    bool linear_switches() const override { return true; }
    int switch_layer(std::size_t) const override { return 0; }
    std::size_t switch_neuron(std::size_t unit) const override { return unit; }

    void forward(const double* theta, const double* X, std::size_t n, const double* slopes, double* out,
                 double* scratch) const override {
        if (small(n)) return small_kernels_->forward(m_, relu_, theta, X, n, slopes, out, layout(scratch).rows);
        forward_panels(theta, X, n, slopes, out, scratch);
    }

    void vjp(const double* theta, const double* X, std::size_t n, const double* slopes, const double* G,
             double* grad, double* scratch) const override {
        backward(theta, X, n, slopes, G, grad, scratch, false);
    }
    // One panel of samples (small n): forward() left every sample's hidden row in scratch (and the packed weights,
    // unless the net is small())
    void vjp_after_forward(const double* theta, const double* X, std::size_t n, const double* slopes,
                           const double* G, double* grad, double* scratch) const override {
        backward(theta, X, n, slopes, G, grad, scratch, n <= panel);
    }

    void preactivations(const double* theta, const double* X, std::size_t n, const double*, double* h,
                        double* scratch) const override {
        if (!relu_) return;  // a linear network has no switching functions
        if (small(n)) return small_kernels_->preactivations(m_, theta, X, n, h);
        const Layout s = pack(theta, scratch);
        gemm(false, n, m_, d_, X, d_, 1, s.W1T, m_, h, m_);
    }

    void slope_direction(const double* theta, const double* X, const double*, std::size_t k, const double* G,
                         double* out) const override {
        for (std::size_t q = 0; q < n_params(); ++q) out[q] = 0.0;
        slope_direction_block(theta, X, k, G, out + unit_block_offset(k % m_));
    }

    std::size_t unit_block_size() const override { return d_; }
    std::size_t unit_block_offset(std::size_t unit) const override { return unit * d_; }
    void slope_direction_block(const double* theta, const double* X, std::size_t k, const double* G,
                               double* out) const override {
        const double back = slope_direction_scale(theta, k, G);
        for (std::size_t l = 0; l < d_; ++l) out[l] = back * X[(k / m_) * d_ + l];
    }

    double slope_direction_scale(const double* theta, std::size_t k, const double* G) const override {
        const std::size_t i = k / m_, j = k % m_;
        const double* W2 = theta + m_ * d_;
        double back = 0.0;
        for (std::size_t c = 0; c < c_; ++c) back += G[i * c_ + c] * W2[c * m_ + j];
        return back;
    }

    const double* fixed_normal(const double* X, std::size_t k) const override { return X + (k / m_) * d_; }

    std::size_t output_weight(std::size_t unit, std::size_t c) const override { return m_ * d_ + c * m_ + unit; }
    // Phi_c = sum_j s_j W2_cj (w_j . x): products of the weights' polynomials
    void output_polynomials(const double* coef, std::size_t deg, const double* x, const double* slopes,
                            double* out) const override {
        const std::size_t p = n_params(), stride = 2 * deg + 1;
        std::fill(out, out + c_ * stride, 0.0);
        std::vector<double> h(deg + 1);
        for (std::size_t j = 0; j < m_; ++j) {
            const double s = relu_ ? slopes[j] : 1.0;
            if (s == 0.0) continue;
            for (std::size_t m = 0; m <= deg; ++m) h[m] = dot(coef + m * p + j * d_, x, d_);
            for (std::size_t c = 0; c < c_; ++c)
                for (std::size_t a = 0; a <= deg; ++a) {
                    const double w = s * coef[a * p + output_weight(j, c)];
                    for (std::size_t b = 0; b <= deg; ++b) out[c * stride + a + b] += w * h[b];
                }
        }
    }

    void switch_normal(const double*, const double* X, const double*, std::size_t k, double* out) const override {
        const std::size_t i = k / m_, j = k % m_;
        for (std::size_t q = 0; q < n_params(); ++q) out[q] = 0.0;
        for (std::size_t l = 0; l < d_; ++l) out[j * d_ + l] = X[i * d_ + l];
    }

    // It only scales a rounding band, and the integrator asks for the switches one by one: long rows are summed in
    // eight interleaved partial sums, which cuts the latency of the dependent adds.
    double switch_scale(const double* theta, const double* X, const double*, std::size_t k) const override {
        const std::size_t i = k / m_, j = k % m_;
        const double* w = theta + j * d_;
        const double* x = X + i * d_;
        double s = 0.0;
        std::size_t l = 0;
        if (d_ >= long_rows) {
            double c[8] = {};
            for (; l + 8 <= d_; l += 8)
                for (std::size_t q = 0; q < 8; ++q) c[q] += std::abs(w[l + q] * x[l + q]);
            s = ((c[0] + c[4]) + (c[2] + c[6])) + ((c[1] + c[5]) + (c[3] + c[7]));
        }
        for (; l < d_; ++l) s += std::abs(w[l] * x[l]);
        return s;
    }

    // all of them in one product: sum_l |w_jl x_il| = (|X| |W1|^T)_ij
    void switch_scales(const double* theta, const double* X, std::size_t n, const double*,
                       double* out) const override {
        std::vector<double> abs_X(n * d_), abs_W1T(d_ * m_);
        for (std::size_t q = 0; q < n * d_; ++q) abs_X[q] = std::abs(X[q]);
        for (std::size_t j = 0; j < m_; ++j)
            for (std::size_t l = 0; l < d_; ++l) abs_W1T[l * m_ + j] = std::abs(theta[j * d_ + l]);
        gemm(false, n, m_, d_, abs_X.data(), d_, 1, abs_W1T.data(), m_, out, m_);
    }

    // Phi is bilinear in (w_j, column j of W2): the only second derivatives are slope_ij x_i between them
    void add_hessian_rows(const double*, const double* X, std::size_t n, const double* slopes, const double* G,
                          const std::vector<std::size_t>& rows, double* J) const override {
        const std::size_t p = n_params(), off = m_ * d_, none = rows.size();
        std::vector<std::size_t> at(p, none);  // each parameter's row in J, `none` if not asked for
        for (std::size_t k = 0; k < rows.size(); ++k) at[rows[k]] = k;
        for (std::size_t i = 0; i < n; ++i)
            for (std::size_t j = 0; j < m_; ++j) {
                const double sl = relu_ ? slopes[i * m_ + j] : 1.0;
                if (sl == 0.0) continue;
                for (std::size_t c = 0; c < c_; ++c) {
                    const double g = sl * G[i * c_ + c];
                    const std::size_t v = off + c * m_ + j;
                    for (std::size_t l = 0; l < d_; ++l) {
                        const double term = g * X[i * d_ + l];
                        if (at[j * d_ + l] != none) J[at[j * d_ + l] * p + v] += term;
                        if (at[v] != none) J[at[v] * p + j * d_ + l] += term;
                    }
                }
            }
    }

    std::size_t n_balances() const override { return m_; }
    void balances(const double* theta, double* balance, double* scale) const override {
        const double* W2 = theta + m_ * d_;
        for (std::size_t j = 0; j < m_; ++j) {
            double in = 0.0, out = 0.0;
            for (std::size_t a = 0; a < d_; ++a) in += theta[j * d_ + a] * theta[j * d_ + a];
            for (std::size_t c = 0; c < c_; ++c) out += W2[c * m_ + j] * W2[c * m_ + j];
            balance[j] = in - out, scale[j] = in + out;
        }
    }

private:
    static constexpr std::size_t panel = 32;  // samples per pass: their hidden rows stay in cache
    // From this many inputs on, some sums are rounded in another (fixed) order for speed; smaller networks keep the
    // plain order of every sum.
    static constexpr std::size_t long_rows = 16;
    static constexpr std::size_t small_terms = 256;  // small(): n * width * (d_in + d_out) at most

    struct Layout {
        double *W1T, *gW1T, *W2T, *rows;
    };

    // With one output and long rows, grad w_j = W2_j v_j and grad W2_j = w_j . v_j, v_j = sum_i G_i s_ij x_i: one
    // product over the samples instead of two, as the hidden layer is not needed.
    bool factored() const { return c_ == 1 && d_ >= long_rows; }

    // a net with an instance of small_net's passes (few inputs and outputs), whose samples fit one panel and whose
    // products have few terms, takes them (the rank paper's 2 x 2 net)
    bool small(std::size_t n) const { return n <= small_samples_; }

    // vjp; forwarded: scratch holds forward()'s hidden rows of every sample (one panel), and, unless the net is
    // small (small_net's own backward pass), its packed weights. Per panel, three products: grad W2 += G^T A (A: the
    // activations), then the rows B = (G W2) .* slopes that multiply the samples in the W1 gradient, W1 gradient +=
    // X^T B. Each sum runs over the samples (or outputs) in order from +0, as the per-sample loops did.
    void backward(const double* theta, const double* X, std::size_t n, const double* slopes, const double* G,
                  double* grad, double* scratch, bool forwarded) const {
        if (!small(n)) return backward_panels(theta, X, n, slopes, G, grad, scratch, forwarded);
        double* rows = layout(scratch).rows;
        if (!forwarded) small_kernels_->forward(m_, relu_, theta, X, n, slopes, nullptr, rows);
        small_kernels_->backward(m_, relu_, theta, X, n, slopes, G, rows, grad);
    }

    // the tiled passes, kept out of the small nets' path: inlined there, their set-up costs a small net's field
    // as much again
    [[gnu::noinline]] void forward_panels(const double* theta, const double* X, std::size_t n, const double* slopes,
                                          double* out, double* scratch) const {
        const Layout s = pack(theta, scratch);
        for (std::size_t i0 = 0; i0 < n; i0 += panel) {
            const std::size_t rows = std::min(panel, n - i0);
            hidden(X, i0, rows, slopes, s);
            gemm(false, rows, c_, m_, s.rows, m_, 1, s.W2T, c_, out + i0 * c_, c_);
        }
    }
    [[gnu::noinline]] void backward_panels(const double* theta, const double* X, std::size_t n, const double* slopes,
                                           const double* G, double* grad, double* scratch, bool forwarded) const {
        const Layout s = forwarded ? layout(scratch) : pack(theta, scratch);
        const double* W2 = theta + m_ * d_;
        double* gW2 = grad + m_ * d_;
        const bool factored = this->factored();
        std::fill(s.gW1T, s.gW1T + d_ * m_, 0.0);  // v^T when factored
        std::fill(gW2, gW2 + c_ * m_, 0.0);
        for (std::size_t i0 = 0; i0 < n; i0 += panel) {
            const std::size_t rows = std::min(panel, n - i0);
            const double* G_panel = G + i0 * c_;
            if (factored) {
                for (std::size_t r = 0; r < rows; ++r) {
                    double* row = s.rows + r * m_;
                    if (!relu_) std::fill(row, row + m_, G_panel[r]);
                    else
                        for (std::size_t j = 0; j < m_; ++j) row[j] = G_panel[r] * slopes[(i0 + r) * m_ + j];
                }
            } else {
                if (!forwarded) hidden(X, i0, rows, slopes, s);
                gemm(true, c_, m_, rows, G_panel, 1, c_, s.rows, m_, gW2, m_);
                gemm(false, rows, m_, c_, G_panel, c_, 1, W2, m_, s.rows, m_, relu_ ? slopes + i0 * m_ : nullptr);
            }
            gemm(true, d_, m_, rows, X + i0 * d_, 1, d_, s.rows, m_, s.gW1T, m_);
        }
        for (std::size_t j = 0; j < m_; ++j) {
            double* g = grad + j * d_;
            if (!factored) {
                for (std::size_t l = 0; l < d_; ++l) g[l] = s.gW1T[l * m_ + j];
                continue;
            }
            for (std::size_t l = 0; l < d_; ++l) {
                const double v = s.gW1T[l * m_ + j];
                g[l] = W2[j] * v;
                gW2[j] += s.W1T[l * m_ + j] * v;
            }
        }
    }

    Layout layout(double* scratch) const {
        double* rows = scratch + 2 * d_ * m_ + m_ * c_;
        return {scratch, scratch + d_ * m_, scratch + 2 * d_ * m_, rows};
    }

    Layout pack(const double* theta, double* scratch) const {
        const Layout s = layout(scratch);
        const double* W2 = theta + m_ * d_;
        for (std::size_t j = 0; j < m_; ++j) {
            for (std::size_t l = 0; l < d_; ++l) s.W1T[l * m_ + j] = theta[j * d_ + l];
            for (std::size_t c = 0; c < c_; ++c) s.W2T[j * c_ + c] = W2[c * m_ + j];
        }
        return s;
    }

    // s.rows = the activations (with the given slopes, if any) of samples i0 .. i0 + rows - 1
    void hidden(const double* X, std::size_t i0, std::size_t rows, const double* slopes, const Layout& s) const {
        const double* scales = relu_ && slopes ? slopes + i0 * m_ : nullptr;
        gemm(false, rows, m_, d_, X + i0 * d_, d_, 1, s.W1T, m_, s.rows, m_, scales);
        if (!relu_ || slopes) return;
        for (std::size_t q = 0; q < rows * m_; ++q) s.rows[q] = s.rows[q] > 0.0 ? s.rows[q] : 0.0;
    }

    std::size_t d_, m_, c_;
    bool relu_;
    const small_net::Kernels* small_kernels_;  // none: no compile-time instance for d_in, d_out
    std::size_t small_samples_ = 0;  // small(n) up to this many samples
};

}  // namespace fastflow
