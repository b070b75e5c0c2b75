// Rigorous root isolation for a switching function along a step's polynomial dense output: the derivative's roots
// split [0,1] into monotone pieces, each of which holds at most one root, so a sign that leaves and returns
// inside one step is never missed.
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

namespace fastflow {

constexpr int max_poly_degree = 64;  // DENSE_DEGREE x hidden layers: networks of depth up to 17

inline double poly_eval(const double* c, int deg, double x) {
    double v = c[deg];
    for (int m = deg - 1; m >= 0; --m) v = v * x + c[m];
    return v;
}

// bisection to adjacent doubles on a bracket [lo, hi] with g(lo) <= 0 < g(hi) (g increasing or decreasing)
template <class F>
double bisect_crossing(F&& g, double lo, double hi) {
    for (int it = 0; it < 200; ++it) {
        const double mid = 0.5 * (lo + hi);
        if (mid <= lo || mid >= hi) break;
        (g(mid) > 0.0 ? hi : lo) = mid;
    }
    return 0.5 * (lo + hi);
}

// The same crossing, for a g that is costly and smooth but for kinks (a sliding multiplier along the dense output):
// the Illinois variant of regula falsi converges superlinearly; a bisection step whenever three secant steps have
// not halved the bracket keeps its worst case that of bisection. g_lo, g_hi: g at the ends. Stops once the bracket
// is at most `width` wide and returns its crossed end hi.
template <class F>
double secant_crossing(F&& g, double lo, double g_lo, double hi, double g_hi, double width) {
    // g already past 0 at lo, or not yet at hi: the crossing is that end, to its rounding (a bisection would
    // take up to 200 evaluations to get there)
    if (!(g_lo <= 0.0)) return std::nextafter(lo, hi);
    if (!(g_hi > 0.0)) return hi;
    int side = 0, steps = 0;  // side: which end the last step moved (-1 lo, +1 hi)
    double last = hi - lo;
    for (int it = 0; it < 200 && hi - lo > width; ++it) {
        const double mid = 0.5 * (lo + hi);
        if (mid <= lo || mid >= hi) break;
        double x = lo - g_lo * (hi - lo) / (g_hi - g_lo);
        if (++steps == 3) {
            if (hi - lo > 0.5 * last) x = mid;
            steps = 0, last = hi - lo;
        }
        if (!(x > lo && x < hi)) x = mid;
        const double gx = g(x);
        if (gx > 0.0) {
            hi = x, g_hi = gx;
            if (side == 1) g_lo *= 0.5;
            side = 1;
        } else {
            lo = x, g_lo = gx;
            if (side == -1) g_hi *= 0.5;
            side = -1;
        }
    }
    return hi;
}

// sorted real roots of the polynomial in the open interval (a, b)
inline void real_roots(const double* c, int deg, double a, double b, std::vector<double>& out) {
    out.clear();
    while (deg > 0 && c[deg] == 0.0) --deg;
    if (deg <= 0) return;
    if (deg == 1) {
        const double r = -c[0] / c[1];
        if (r > a && r < b) out.push_back(r);
        return;
    }
    double dc[max_poly_degree];
    for (int m = 1; m <= deg; ++m) dc[m - 1] = m * c[m];
    std::vector<double> crit;
    real_roots(dc, deg - 1, a, b, crit);
    double lo = a, plo = poly_eval(c, deg, a);
    for (std::size_t q = 0; q <= crit.size(); ++q) {
        const double hi = q < crit.size() ? crit[q] : b;
        const double phi = poly_eval(c, deg, hi);
        if (plo * phi < 0.0) {
            const double s = plo < 0.0 ? 1.0 : -1.0;
            out.push_back(bisect_crossing([&](double x) { return s * poly_eval(c, deg, x); }, lo, hi));
        } else if (phi == 0.0 && hi < b) {
            out.push_back(hi);
        }
        lo = hi, plo = phi;
    }
}

// The first sigma in [0,1] where g (a polynomial) crosses from <= 0 to > 0 and then exceeds `band` before
// returning to <= 0; -1 when there is none. Excursions inside the rounding band are not switches, which is also
// what keeps the event just handled (g = 0 at sigma = 0, moving away) from being detected again. A start inside the
// band is on the surface: its offset is rounding, and a switch that leaves it and turns back across at once (its
// speed at the surface vanishing, its acceleration not) crosses where it turns back, not at the start.
inline double first_violation(const double* g_in, int deg, double band) {
    double abs_sum = 0.0;
    for (int m = 1; m <= deg; ++m) abs_sum += std::abs(g_in[m]);
    if (g_in[0] + abs_sum <= band) return -1.0;  // cheap exclusion: max over [0,1] cannot exceed the band
    double on_surface[max_poly_degree + 1];
    const double* g = g_in;
    if (g_in[0] > 0.0 && g_in[0] <= band) {
        std::copy(g_in, g_in + deg + 1, on_surface);
        on_surface[0] = 0.0;
        g = on_surface;
    }
    double dg[max_poly_degree];
    for (int m = 1; m <= deg; ++m) dg[m - 1] = m * g[m];
    std::vector<double> crit;
    real_roots(dg, deg - 1, 0.0, 1.0, crit);
    double a = 0.0, ga = g[0];
    double candidate = ga > 0.0 ? 0.0 : -1.0;
    for (std::size_t q = 0; q <= crit.size(); ++q) {
        const double b = q < crit.size() ? crit[q] : 1.0;
        const double gb = poly_eval(g, deg, b);
        if (ga <= 0.0 && gb > 0.0)
            candidate = bisect_crossing([&](double x) { return poly_eval(g, deg, x); }, a, b);
        if (gb > band) return candidate;
        if (gb <= 0.0) candidate = -1.0;
        a = b, ga = gb;
    }
    return -1.0;
}

}  // namespace fastflow
