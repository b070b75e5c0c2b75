// The passes of a small two-layer net (one panel of samples, few products), sample by sample with the weights read
// in place: packing them and setting up the tiled products would cost more than its arithmetic. The papers' nets
// have 1 to 4 inputs (D) and 1 or 2 outputs (C); those sizes are compile-time constants here, so the loops over them
// unroll. (With them read at run time, the same loops cost 4-18% more instructions than the tiled products on flows
// of nets with 190-250 terms.) So is a width M of at most 4 (M = 0: read at run time): the rank paper's 2x2 net then
// runs without a loop. Every sum runs in the order of the tiled products, from +0, but unfused (the tiles fuse each
// multiply-add): a net keeps one of the two paths, by its size, for a whole run.
#pragma once
#include <algorithm>
#include <array>
#include <cstddef>
#include <utility>

namespace fastflow::small_net {

// theta = [W1 (m x D) row-major, W2 (C x m) row-major]; X: n x D; relu false: a linear net.
// rows (n x m) <- the activations, with the given slopes (none: sigma'(h) = 1[h > 0]); out (n x C) <- the outputs,
// if given. Each output is summed over the units in order, the units in the outer loop: only that loop runs to a
// size read at run time.
template <std::size_t D, std::size_t C, std::size_t M>
void forward(std::size_t width, bool relu, const double* theta, const double* X, std::size_t n, const double* slopes,
             double* __restrict out, double* __restrict rows) {
    const std::size_t m = M ? M : width;
    const double* W2 = theta + m * D;
    for (std::size_t i = 0; i < n; ++i) {
        const double* x = X + i * D;
        double* a = rows + i * m;
        for (std::size_t j = 0; j < m; ++j) {
            double h = 0.0;
            for (std::size_t l = 0; l < D; ++l) h += x[l] * theta[j * D + l];
            a[j] = !relu ? h : slopes ? h * slopes[i * m + j] : h > 0.0 ? h : 0.0;
        }
        if (!out) continue;
        double* o = out + i * C;
        for (std::size_t k = 0; k < C; ++k) o[k] = 0.0;
        for (std::size_t j = 0; j < m; ++j)
            for (std::size_t k = 0; k < C; ++k) o[k] += a[j] * W2[k * m + j];
    }
}

// grad <- sum_i G_i . dPhi_i/dtheta, from the activations `rows` that forward() left with the same slopes
template <std::size_t D, std::size_t C, std::size_t M>
void backward(std::size_t width, bool relu, const double* theta, const double* X, std::size_t n, const double* slopes,
              const double* G, const double* rows, double* grad) {
    const std::size_t m = M ? M : width;
    const double* W2 = theta + m * D;
    double* gW2 = grad + m * D;
    std::fill(grad, grad + m * (D + C), 0.0);
    for (std::size_t i = 0; i < n; ++i) {
        const double *x = X + i * D, *g = G + i * C, *a = rows + i * m;
        for (std::size_t j = 0; j < m; ++j) {
            double back = 0.0;  // what multiplies x_i in the gradient of w_j
            for (std::size_t k = 0; k < C; ++k) {
                gW2[k * m + j] += g[k] * a[j];
                back += g[k] * W2[k * m + j];
            }
            if (relu) back *= slopes[i * m + j];
            for (std::size_t l = 0; l < D; ++l) grad[j * D + l] += back * x[l];
        }
    }
}

// h (n x m) <- every hidden pre-activation
template <std::size_t D, std::size_t M>
void preactivations(std::size_t width, const double* theta, const double* X, std::size_t n, double* h) {
    const std::size_t m = M ? M : width;
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < m; ++j) {
            double s = 0.0;
            for (std::size_t l = 0; l < D; ++l) s += X[i * D + l] * theta[j * D + l];
            h[i * m + j] = s;
        }
}

struct Kernels {
    void (*forward)(std::size_t, bool, const double*, const double*, std::size_t, const double*, double*, double*);
    void (*backward)(std::size_t, bool, const double*, const double*, std::size_t, const double*, const double*,
                     const double*, double*);
    void (*preactivations)(std::size_t, const double*, const double*, std::size_t, double*);
};

template <std::size_t D, std::size_t C, std::size_t M>
constexpr Kernels kernels_of() {
    return {forward<D, C, M>, backward<D, C, M>, preactivations<D, M>};
}

constexpr std::size_t max_d = 4, max_c = 2, max_m = 4;

// the instances for d inputs and c outputs: widths 0 (read at run time) to max_m
template <std::size_t D, std::size_t C, std::size_t... M>
constexpr std::array<Kernels, sizeof...(M)> widths_of(std::index_sequence<M...>) {
    return {kernels_of<D, C, M>()...};
}
template <std::size_t D, std::size_t C>
constexpr std::array<Kernels, max_m + 1> widths_of() {
    return widths_of<D, C>(std::make_index_sequence<max_m + 1>{});
}

// the instance for d inputs, c outputs and width m, or nullptr: the net takes the tiled products whatever its size
inline const Kernels* kernels(std::size_t d, std::size_t c, std::size_t m) {
    static constexpr std::array<Kernels, max_m + 1> fixed[max_d][max_c] = {
        {widths_of<1, 1>(), widths_of<1, 2>()},
        {widths_of<2, 1>(), widths_of<2, 2>()},
        {widths_of<3, 1>(), widths_of<3, 2>()},
        {widths_of<4, 1>(), widths_of<4, 2>()},
    };
    if (d < 1 || d > max_d || c < 1 || c > max_c) return nullptr;
    return &fixed[d - 1][c - 1][m <= max_m ? m : 0];
}

}  // namespace fastflow::small_net
