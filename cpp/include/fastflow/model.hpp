// The network interface seen by the integrator, and the depth-2 network.
//
// A model maps theta to outputs with explicit activation slopes (1 = active, 0 = inactive; on a switching surface
// any s in [0,1] is a Clarke subgradient), so the integrator can evaluate every one-sided field and every convex
// combination of them without knowing the architecture. New architectures implement this interface only.
#pragma once
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <vector>

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

    // out (n x d_out) = Phi(theta; X) with the given slopes (n x n_hidden)
    virtual void forward(const double* theta, const double* X, std::size_t n, const double* slopes, double* out,
                         double* scratch) const = 0;
    // grad (n_params) = sum_i G_i . dPhi_i/dtheta with the given slopes
    virtual void vjp(const double* theta, const double* X, std::size_t n, const double* slopes, const double* G,
                     double* grad, double* scratch) const = 0;
    // h (n x n_hidden): every hidden pre-activation
    virtual void preactivations(const double* theta, const double* X, std::size_t n, const double* slopes,
                                double* h, double* scratch) const = 0;
    // Per-switch quantities; `slopes` are the n x n_hidden slopes in force (the modes of the other switches).
    // out (n_params) = d vjp / d slope_k, for a switch k on its surface (h_k = 0)
    virtual void slope_direction(const double* theta, const double* X, const double* slopes, std::size_t k,
                                 const double* G, double* out) const = 0;
    // out (n_params) = d h_k / d theta, the normal of switching surface k
    virtual void switch_normal(const double* theta, const double* X, const double* slopes, std::size_t k,
                               double* out) const = 0;
    // sum of |terms| of h_k: the scale of its rounding error
    virtual double switch_scale(const double* theta, const double* X, const double* slopes,
                                std::size_t k) const = 0;
    // J (n_params x n_params, row-major) += sum_i G_i . d^2 Phi_i / dtheta^2 with the given slopes
    virtual void add_weighted_hessian(const double* theta, const double* X, std::size_t n, const double* slopes,
                                      const double* G, double* J) const = 0;
    virtual bool has_hessian() const { return true; }
};

// Phi(x) = W2 sigma(W1 x); theta = [W1 (width x d_in) row-major, W2 (d_out x width) row-major]
class TwoLayer final : public Model {
public:
    TwoLayer(std::size_t d_in, std::size_t width, std::size_t d_out, bool relu)
        : d_(d_in), m_(width), c_(d_out), relu_(relu) {
        if (d_in == 0) throw std::invalid_argument("d_in must be positive");
        if (width == 0) throw std::invalid_argument("width must be positive");
        if (d_out == 0) throw std::invalid_argument("d_out must be positive");
    }
    std::size_t n_params() const override { return m_ * d_ + c_ * m_; }
    std::size_t d_in() const override { return d_; }
    std::size_t d_out() const override { return c_; }
    std::size_t n_hidden() const override { return relu_ ? m_ : 0; }
    std::size_t scratch_size() const override { return 2 * m_; }
    bool linear_switches() const override { return true; }
    int switch_layer(std::size_t) const override { return 0; }
    std::size_t switch_neuron(std::size_t unit) const override { return unit; }
    std::size_t width() const { return m_; }
    bool relu() const { return relu_; }

    void forward(const double* theta, const double* X, std::size_t n, const double* slopes, double* out,
                 double* scratch) const override {
        const double* W2 = theta + m_ * d_;
        double* a = scratch;
        for (std::size_t i = 0; i < n; ++i) {
            hidden(theta, X + i * d_, slopes ? slopes + i * n_hidden() : nullptr, a);
            for (std::size_t c = 0; c < c_; ++c) {
                double s = 0.0;
                for (std::size_t j = 0; j < m_; ++j) s += W2[c * m_ + j] * a[j];
                out[i * c_ + c] = s;
            }
        }
    }

    void vjp(const double* theta, const double* X, std::size_t n, const double* slopes, const double* G,
             double* grad, double* scratch) const override {
        const double* W2 = theta + m_ * d_;
        double* gW1 = grad;
        double* gW2 = grad + m_ * d_;
        for (std::size_t q = 0; q < n_params(); ++q) grad[q] = 0.0;
        double* a = scratch;
        double* back = scratch + m_;
        for (std::size_t i = 0; i < n; ++i) {
            const double* x = X + i * d_;
            const double* sl = slopes ? slopes + i * n_hidden() : nullptr;
            hidden(theta, x, sl, a);
            for (std::size_t j = 0; j < m_; ++j) back[j] = 0.0;
            for (std::size_t c = 0; c < c_; ++c) {
                const double g = G[i * c_ + c];
                if (g == 0.0) continue;
                for (std::size_t j = 0; j < m_; ++j) {
                    gW2[c * m_ + j] += g * a[j];
                    back[j] += g * W2[c * m_ + j];
                }
            }
            for (std::size_t j = 0; j < m_; ++j) {
                const double delta = relu_ ? back[j] * sl[j] : back[j];
                if (delta == 0.0) continue;
                double* row = gW1 + j * d_;
                for (std::size_t l = 0; l < d_; ++l) row[l] += delta * x[l];
            }
        }
    }

    void preactivations(const double* theta, const double* X, std::size_t n, const double*, double* h,
                        double*) const override {
        if (!relu_) return;  // a linear network has no switching functions
        for (std::size_t i = 0; i < n; ++i)
            for (std::size_t j = 0; j < m_; ++j) h[i * m_ + j] = pre(theta, X + i * d_, j);
    }

    void slope_direction(const double* theta, const double* X, const double*, std::size_t k, const double* G,
                         double* out) const override {
        const std::size_t i = k / m_, j = k % m_;
        const double* W2 = theta + m_ * d_;
        double back = 0.0;
        for (std::size_t c = 0; c < c_; ++c) back += G[i * c_ + c] * W2[c * m_ + j];
        for (std::size_t q = 0; q < n_params(); ++q) out[q] = 0.0;
        for (std::size_t l = 0; l < d_; ++l) out[j * d_ + l] = back * X[i * d_ + l];
    }

    void switch_normal(const double*, const double* X, const double*, std::size_t k, double* out) const override {
        const std::size_t i = k / m_, j = k % m_;
        for (std::size_t q = 0; q < n_params(); ++q) out[q] = 0.0;
        for (std::size_t l = 0; l < d_; ++l) out[j * d_ + l] = X[i * d_ + l];
    }

    double switch_scale(const double* theta, const double* X, const double*, std::size_t k) const override {
        const std::size_t i = k / m_, j = k % m_;
        double s = 0.0;
        for (std::size_t l = 0; l < d_; ++l) s += std::abs(theta[j * d_ + l] * X[i * d_ + l]);
        return s;
    }

    // Phi is bilinear in (w_j, column j of W2): the only second derivatives are slope_ij x_i between them
    void add_weighted_hessian(const double*, const double* X, std::size_t n, const double* slopes, const double* G,
                              double* J) const override {
        const std::size_t p = n_params(), off = m_ * d_;
        for (std::size_t i = 0; i < n; ++i)
            for (std::size_t j = 0; j < m_; ++j) {
                const double sl = relu_ ? slopes[i * m_ + j] : 1.0;
                if (sl == 0.0) continue;
                for (std::size_t c = 0; c < c_; ++c) {
                    const double g = sl * G[i * c_ + c];
                    const std::size_t v = off + c * m_ + j;
                    for (std::size_t l = 0; l < d_; ++l) {
                        const double term = g * X[i * d_ + l];
                        J[(j * d_ + l) * p + v] += term;
                        J[v * p + j * d_ + l] += term;
                    }
                }
            }
    }

private:
    double pre(const double* theta, const double* x, std::size_t j) const {
        const double* w = theta + j * d_;
        double s = 0.0;
        for (std::size_t l = 0; l < d_; ++l) s += w[l] * x[l];
        return s;
    }
    void hidden(const double* theta, const double* x, const double* slopes, double* a) const {
        for (std::size_t j = 0; j < m_; ++j) {
            const double h = pre(theta, x, j);
            a[j] = relu_ ? slopes[j] * h : h;
        }
    }

    std::size_t d_, m_, c_;
    bool relu_;
};

}  // namespace fastflow
