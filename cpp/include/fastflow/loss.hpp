// Losses in log space: per-sample weights and log L never under- or overflow at margins of 1e6 and beyond.
#pragma once
#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>

namespace fastflow {

enum class Loss { exponential, logistic, square };

inline Loss loss_from_name(const std::string& name) {
    if (name == "exponential") return Loss::exponential;
    if (name == "logistic") return Loss::logistic;
    if (name == "square") return Loss::square;
    throw std::invalid_argument("loss must be 'exponential', 'logistic' or 'square', got '" + name + "'");
}

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

inline double log_sum_exp(const double* a, std::size_t n) {
    double m = -std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < n; ++i) m = a[i] > m ? a[i] : m;
    if (!std::isfinite(m)) return m;
    double s = 0.0;
    for (std::size_t i = 0; i < n; ++i) s += std::exp(a[i] - m);
    return m + std::log(s);
}

}  // namespace fastflow
