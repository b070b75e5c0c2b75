// Wolfe's minimum-norm-point algorithm (Math. Programming 11, 1976) on a polytope given by its linear
// minimisation oracle: the minimal-norm element of a Clarke subdifferential that is the convex hull of the one-sided
// fields of a deep network (not an affine image of a box, as for depth 2).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "linalg.hpp"

namespace fastflow {

// The differences s_a - s_0 (a = 1..k-1) of k points S (k x p, row-major) as Q R: Q's rows orthonormal, R upper
// triangular, by modified Gram-Schmidt (twice is enough, Kahan-Parlett). Dependent differences are not kept (their
// row of Q and column of R are zero).
struct DifferenceQR {
    std::size_t m = 0;
    std::vector<double> Q, R;  // m x p, m x m
    std::vector<bool> kept;
};
// f <- f with the difference s - s0 appended (s0: the first point of those f holds); the first m columns are those
// of the shorter QR, so appending point by point gives the QR of all of them
inline void append_difference(DifferenceQR& f, const double* s0, const double* s, std::size_t p) {
    const std::size_t a = f.m, m = a + 1;
    std::vector<double> R(m * m, 0.0);
    for (std::size_t b = 0; b < a; ++b)
        for (std::size_t c = 0; c < a; ++c) R[b * m + c] = f.R[b * a + c];
    f.R.swap(R);
    f.m = m;
    f.Q.resize(m * p);
    f.kept.push_back(false);
    double* q = &f.Q[a * p];
    for (std::size_t i = 0; i < p; ++i) q[i] = s[i] - s0[i];
    const double original = norm2(q, p);
    for (int pass = 0; pass < 2; ++pass)
        for (std::size_t b = 0; b < a; ++b) {
            if (!f.kept[b]) continue;
            const double c = dot(&f.Q[b * p], q, p);
            f.R[b * m + a] += c;
            for (std::size_t i = 0; i < p; ++i) q[i] -= c * f.Q[b * p + i];
        }
    const double len = norm2(q, p);
    if (!(len > 1e-12 * original)) {
        std::fill(q, q + p, 0.0);
        return;
    }
    f.kept[a] = true;
    f.R[a * m + a] = len;
    for (std::size_t i = 0; i < p; ++i) q[i] /= len;
}
inline DifferenceQR difference_qr(const std::vector<double>& S, std::size_t k, std::size_t p) {
    DifferenceQR f;
    for (std::size_t a = 1; a < k; ++a) append_difference(f, S.data(), &S[a * p], p);
    return f;
}

// beta (k - 1) minimising |s_0 + sum_j beta_j (s_j - s_0)| over the k points S (k x p, row-major), on the
// differences' Q R f (difference_qr): the normal equations would square their conditioning, and corner fields can
// be 1e5 times the minimal-norm point (large loss weights whose slopes nearly cancel). Dependent differences get 0.
inline void affine_minimiser(const DifferenceQR& f, const std::vector<double>& S, std::size_t p,
                             std::vector<double>& beta) {
    const std::size_t m = f.m;
    // R beta = -Q^T s_0 on the kept columns (the residual r = s_0 is orthogonalised like the columns)
    std::vector<double> c(m, 0.0), r(S.begin(), S.begin() + static_cast<std::ptrdiff_t>(p));
    for (std::size_t a = 0; a < m; ++a)
        if (f.kept[a]) {
            c[a] = -dot(&f.Q[a * p], r.data(), p);
            for (std::size_t i = 0; i < p; ++i) r[i] += c[a] * f.Q[a * p + i];
        }
    beta.assign(m, 0.0);
    for (std::size_t a = m; a-- > 0;) {
        if (!f.kept[a]) continue;
        double v = c[a];
        for (std::size_t b = a + 1; b < m; ++b) v -= f.R[a * m + b] * beta[b];
        beta[a] = v / f.R[a * m + a];
    }
}

// The final corral: the points whose convex combination with these weights is the minimal-norm point, and the tags
// the oracle gave them (which corner each is), so a caller can differentiate the point with its face held fixed.
// Empty after an overflow. gap: the duality gap <x, x - v> at the point, which bounds |x - x*|^2 (x* the exact
// point: <x*, y - x*> >= 0 on the hull).
template <class Tag>
struct Corral {
    std::vector<Tag> tags;
    std::vector<double> weights, points;  // points: one row of length p per tag
    double gap = INFINITY;
};

// lmo(x, v) writes into v (length p) a vertex of the polytope minimising <x, v> and returns its tag. Returns the
// minimal-norm point in x, and its corral. start: tags of vertices to begin from, with convex weights (none: the
// oracle's vertex at 0), their vertices written by vertex(tag, v): the corral of a nearby polytope (a velocity's
// hull at the last state) starts it near its answer.
template <class Lmo, class Tag, class Vertex>
Corral<Tag> min_norm_point(std::size_t p, Lmo&& lmo, double* x, const std::vector<Tag>& start,
                           const std::vector<double>& start_weights, Vertex&& vertex, std::size_t max_iter = 500) {
    auto dot_p = [p](const double* a, const double* b) {
        double s = 0.0;
        for (std::size_t q = 0; q < p; ++q) s += a[q] * b[q];
        return s;
    };
    std::vector<double> S, lambda, v(p), alpha, beta;
    std::vector<Tag> tags;
    auto corral = [&](double gap) { return Corral<Tag>{tags, lambda, S, std::max(gap, 0.0)}; };
    // a vertex that overflows (the field at a trial state of a step too long) makes the answer non-finite: the
    // step is rejected, instead of a corral that never sheds a point
    auto overflows = [&] {
        if (std::all_of(v.begin(), v.end(), [](double a) { return std::isfinite(a); })) return false;
        std::copy(v.begin(), v.end(), x);
        return true;
    };
    DifferenceQR f;  // of the corral's points, extended as points join and rebuilt when some leave
    // the minor cycle: from the corral's convex weights towards its affine minimiser, dropping the points whose
    // weights reach 0 on the way, until it lies inside; x <- the point
    auto settle = [&] {
        while (true) {
            // the affine minimiser of the corral, y = s_0 + sum_j beta_j (s_j - s_0): least squares in beta, which
            // stays well posed when the corral is affinely dependent or its minimiser is the origin
            const std::size_t k = lambda.size();
            affine_minimiser(f, S, p, beta);
            alpha.assign(k, 0.0);
            alpha[0] = 1.0;
            for (std::size_t a = 1; a < k; ++a) alpha[a] = beta[a - 1], alpha[0] -= beta[a - 1];
            const double floor = 1e-14;
            if (*std::min_element(alpha.begin(), alpha.end()) > floor) {
                lambda = alpha;
                break;
            }
            // move towards the affine minimiser until a weight reaches 0, and drop those points
            double step = 1.0;
            std::size_t limiting = k;
            for (std::size_t a = 0; a < k; ++a)
                if (alpha[a] <= floor && lambda[a] / (lambda[a] - alpha[a]) <= step)
                    step = lambda[a] / (lambda[a] - alpha[a]), limiting = a;
            std::vector<double> keptS, keptL;
            std::vector<Tag> keptT;
            for (std::size_t a = 0; a < k; ++a) {
                const double w = lambda[a] + step * (alpha[a] - lambda[a]);
                if (w <= floor || a == limiting) continue;  // the limiting point goes even if rounding keeps w > 0
                keptL.push_back(w);
                keptT.push_back(tags[a]);
                keptS.insert(keptS.end(), S.begin() + static_cast<std::ptrdiff_t>(a * p),
                             S.begin() + static_cast<std::ptrdiff_t>((a + 1) * p));
            }
            if (keptL.empty()) break;  // rounding: keep the last corral
            S.swap(keptS), lambda.swap(keptL), tags.swap(keptT);
            f = difference_qr(S, lambda.size(), p);
            double sum = 0.0;
            for (double w : lambda) sum += w;
            for (double& w : lambda) w /= sum;
        }
        std::fill(x, x + p, 0.0);
        for (std::size_t a = 0; a < lambda.size(); ++a)
            for (std::size_t q = 0; q < p; ++q) x[q] += lambda[a] * S[a * p + q];
    };
    std::fill(x, x + p, 0.0);
    double scale = 0.0, last_xx = INFINITY;
    constexpr double rescue_gap = 1e-12;  // of scale: a stall with a gap above it is no rounding
    constexpr std::size_t max_rescues = 8;
    std::size_t rescues = 0;
    if (start.empty()) {
        tags.assign(1, lmo(x, v.data()));
        if (overflows()) return Corral<Tag>{};
        S.assign(v.begin(), v.end());
        lambda.assign(1, 1.0);
        std::copy(v.begin(), v.end(), x);
        scale = dot_p(v.data(), v.data());
    } else {
        for (const Tag& tag : start) {
            vertex(tag, v.data());
            if (overflows()) return Corral<Tag>{};
            S.insert(S.end(), v.begin(), v.end());
            scale = std::max(scale, dot_p(v.data(), v.data()));
        }
        tags = start, lambda = start_weights;
        f = difference_qr(S, tags.size(), p);
        settle();
    }
    for (std::size_t iter = 0; iter < max_iter; ++iter) {
        Tag tag = lmo(x, v.data());
        if (overflows()) return Corral<Tag>{};
        scale = std::max(scale, dot_p(v.data(), v.data()));
        const double xx = dot_p(x, x), gap = xx - dot_p(x, v.data());
        // duality gap <x, x - v> bounds |x - x*|^2: stop at rounding, or once rounding stops |x| from decreasing
        // (it decreases at every iteration in exact arithmetic)
        if (gap <= 1e-15 * scale) return corral(gap);
        const bool stalled = !(xx < last_xx);
        if (stalled && (gap <= rescue_gap * scale || rescues++ == max_rescues)) return corral(gap);
        last_xx = xx;
        S.insert(S.end(), v.begin(), v.end());
        append_difference(f, S.data(), &S[S.size() - p], p);
        tags.push_back(std::move(tag));
        if (!stalled) {
            lambda.push_back(0.0);
            settle();
            continue;
        }
        // A minor cycle that made no progress with the gap far above rounding (it can drop the new vertex again
        // in a degenerate corral, leaving the answer off by percents): a Frank-Wolfe step towards v decreases |x|
        // whenever the gap is positive.
        double dd = 0.0;
        for (std::size_t q = 0; q < p; ++q) dd += (v[q] - x[q]) * (v[q] - x[q]);
        const double gamma = std::min(1.0, gap / dd);
        for (double& w : lambda) w *= 1.0 - gamma;
        lambda.push_back(gamma);
        for (std::size_t q = 0; q < p; ++q) x[q] += gamma * (v[q] - x[q]);
    }
    lmo(x, v.data());
    if (overflows()) return Corral<Tag>{};
    return corral(dot_p(x, x) - dot_p(x, v.data()));
}

template <class Lmo>
auto min_norm_point(std::size_t p, Lmo&& lmo, double* x, std::size_t max_iter = 500) {
    using Tag = decltype(lmo(x, x));
    return min_norm_point(p, lmo, x, std::vector<Tag>{}, {}, [](const Tag&, double*) {}, max_iter);
}

}  // namespace fastflow
