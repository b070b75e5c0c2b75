// Losses in log space: per-sample weights and log L never under- or overflow at margins of 1e6 and beyond.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>

namespace fastflow {

enum class Loss { exponential, logistic, square };

// Adding a loss: its name here, its log l and log(-l') below (and its curvature, for the stiff phase's Jacobian).
inline constexpr const char* loss_names[] = {"exponential", "logistic", "square"};

inline Loss loss_from_name(const std::string& name) {
    for (int k = 0; k < 3; ++k)
        if (name == loss_names[k]) return static_cast<Loss>(k);
    throw std::invalid_argument("loss must be 'exponential', 'logistic' or 'square', got '" + name + "'");
}

inline const char* loss_name(Loss loss) { return loss_names[static_cast<int>(loss)]; }

inline bool is_classification(Loss loss) { return loss != Loss::square; }

// softplus(x) = log(1 + e^x), exact for all x
inline double softplus(double x) { return x > 0.0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }

// log l(q) for a margin q
inline double log_ell(Loss loss, double q) {
    if (loss == Loss::exponential) return -q;
    // logistic: l(q) = softplus(-q); for large q, l = e^{-q}(1 - e^{-q}/2 + ...)
    if (q > 30.0) return -q + std::log1p(-0.5 * std::exp(-q));
    return std::log(softplus(-q));
}

// log(-l'(q)), the log of the per-sample weight
inline double log_neg_dell(Loss loss, double q) { return loss == Loss::exponential ? -q : -softplus(q); }

// e^log_factor (-l'(q)), a sample's weight at the time factor e^log_factor (factor: that value, inf past float64).
// The logistic weight sigma(-q) is formed directly while it is a normal number and the factor finite: one
// exponential instead of three, and no rounding of log_factor's size in the exponent. Else in log space.
inline double sample_weight(Loss loss, double q, double log_factor, double factor) {
    if (loss == Loss::logistic && q <= 700.0 && factor < std::numeric_limits<double>::infinity()) {
        const double e = std::exp(-std::abs(q));
        return factor * (q > 0.0 ? e / (1.0 + e) : 1.0 / (1.0 + e));
    }
    return std::exp(log_factor + log_neg_dell(loss, q));
}

// d(-log w)/dq, the curvature of a classification loss in its margin q
inline double log_weight_slope(Loss loss, double q) {
    return loss == Loss::exponential ? 1.0 : 1.0 / (1.0 + std::exp(-q));
}

// How far a sliding multiplier s may stray out of [0,1] by rounding, for one sample (its outputs, targets and
// weights G): s is a ratio of sample weights, and for the square loss the residual Phi - y cancels, so near a
// minimum its relative error is eps (|Phi| + |y|) / |Phi - y|.
inline double slide_exit_band(Loss loss, const double* out, const double* y, const double* G, std::size_t outputs) {
    constexpr double classification_band = 1e-10;
    if (loss != Loss::square) return classification_band;
    double terms = 0.0, residual = 0.0;
    for (std::size_t c = 0; c < outputs; ++c) {
        terms += std::abs(out[c]) + std::abs(y[c]);
        residual += std::abs(G[c]);
    }
    return std::max(classification_band, 64.0 * std::numeric_limits<double>::epsilon() * terms / residual);
}

inline double log_sum_exp(const double* a, std::size_t n) {
    double m = -std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < n; ++i) m = a[i] > m ? a[i] : m;
    if (!std::isfinite(m)) return m;
    double s = 0.0;
    for (std::size_t i = 0; i < n; ++i) s += std::exp(a[i] - m);
    return m + std::log(s);
}

}  // namespace fastflow
