// Explicit Runge-Kutta steps: the stage loop and the dense output's evaluation that both pairs share, and
// Dormand-Prince 5(4) with Hairer's 4th-order dense output (DOP853: dop853.hpp). Dense outputs are monomial
// polynomials in the step fraction, so that linear switching functions along them are polynomials too.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <utility>
#include <vector>

namespace fastflow::rk {

constexpr int max_dense_degree = 7;  // of the methods' dense outputs (DOP853's)

// y <- y0 + h sum_{r < S} A[S][r] k_r, each component's sum over the stages in order from +0: the stage loop
// unrolls, and one pass over the components serves every stage
template <const auto& A, int S, int... R>
void stage_state_of(const double* y0, double h, const double* const* k, std::size_t p, double* y,
                    std::integer_sequence<int, R...>) {
    for (std::size_t q = 0; q < p; ++q) {
        double sum = 0.0;
        ((A[S][R] != 0.0 ? sum += A[S][R] * k[R][q] : sum), ...);  // a zero's term adds exactly nothing: skipped
        y[q] = y0[q] + h * sum;
    }
}

template <const auto& A, int S>
void stage_state(const double* y0, double h, const double* const* k, std::size_t p, double* y) {
    stage_state_of<A, S>(y0, h, k, p, y, std::make_integer_sequence<int, S>{});
}

using StageState = void (*)(const double*, double, const double* const*, std::size_t, double*);

// stage_state<A, S> for every stage S of the tableau
template <const auto& A, int... S>
constexpr std::array<StageState, sizeof...(S)> stage_state_table(std::integer_sequence<int, S...>) {
    return {stage_state<A, S>...};
}

// The stages First..Last - 1 of a step of size h from y0 (k[0] = f(t, y0), k[s] for s < First known): the last
// one's state in y_last, the others' in y_stage
template <const auto& A, const auto& C, int First, int Last, class Field>
void stages(Field&& f, double t, double h, const double* y0, std::vector<double>* k, double* y_last, double* y_stage,
            std::size_t p) {
    static constexpr auto stage_states = stage_state_table<A>(std::make_integer_sequence<int, Last>{});
    const double* kp[Last];
    for (int s = 0; s < Last; ++s) kp[s] = k[s].data();
    for (int s = First; s < Last; ++s) {
        double* y = s == Last - 1 ? y_last : y_stage;
        stage_states[s](y0, h, kp, p, y);
        f(t + C[s] * h, y, k[s].data());
    }
}

// y(sigma) of a dense output: monomial coefficients c_0..c_degree (each a vector of length p) in the step fraction
inline void dense_eval(const double* coef, int degree, std::size_t p, double sigma, double* y) {
    for (std::size_t q = 0; q < p; ++q) {
        double v = coef[degree * p + q];
        for (int m = degree - 1; m >= 0; --m) v = v * sigma + coef[m * p + q];
        y[q] = v;
    }
}

}  // namespace fastflow::rk

namespace fastflow::dopri5 {

constexpr int ORDER = 5;
constexpr int ERROR_ORDER = 4;  // of the embedded solution: the error estimate scales like h^(ERROR_ORDER + 1)
constexpr int STAGES = 7;
constexpr int FSAL = STAGES - 1;  // the last stage is the field at the step's end: the next step's first
constexpr int DENSE_DEGREE = 4;
constexpr double STABILITY_BOUND = 3.25;  // about h |lambda| on its stability region's boundary

constexpr double C[STAGES] = {0.0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1.0, 1.0};
constexpr double A[STAGES][STAGES] = {
    {0, 0, 0, 0, 0, 0, 0},
    {1.0 / 5, 0, 0, 0, 0, 0, 0},
    {3.0 / 40, 9.0 / 40, 0, 0, 0, 0, 0},
    {44.0 / 45, -56.0 / 15, 32.0 / 9, 0, 0, 0, 0},
    {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729, 0, 0, 0},
    {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656, 0, 0},
    {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84, 0}};
// error estimate: 5th-order minus embedded 4th-order weights
constexpr double E[STAGES] = {71.0 / 57600, 0, -71.0 / 16695, 71.0 / 1920, -17253.0 / 339200, 22.0 / 525, -1.0 / 40};
// Hairer's dense-output coefficients
constexpr double D[STAGES] = {-12715105075.0 / 11282082432, 0, 87487479700.0 / 32700410799,
                              -10690763975.0 / 1880347072, 701980252875.0 / 199316789632,
                              -1453857185.0 / 822651844,   69997945.0 / 29380423};

// Monomial coefficients c0..c4 (each a vector of length p) of y(sigma) on [0,1] from y0, y1, k1, k7 and the
// stages: y = y0 + s A + s(1-s) B + s^2(1-s) C + s^2(1-s)^2 Dd.
inline void dense_coefficients(const double* y0, const double* y1, const double* const* k, double h, std::size_t p,
                               double* coef) {
    for (std::size_t q = 0; q < p; ++q) {
        const double a = y1[q] - y0[q];
        const double b = h * k[0][q] - a;
        const double c = a - h * k[6][q] - b;
        double dd = 0.0;
        for (int s = 0; s < STAGES; ++s) dd += D[s] * k[s][q];
        dd *= h;
        coef[q] = y0[q];
        coef[p + q] = a + b;
        coef[2 * p + q] = -b + c + dd;
        coef[3 * p + q] = -c - 2.0 * dd;
        coef[4 * p + q] = dd;
    }
}

// One step of size h from y0 (k[0] = f(t, y0)): the stages k[1..6] and the 5th-order solution y1 (y_stage:
// workspace). Returns the error estimate's root mean square, scaled by atol + rtol max(|y0|, |y1|).
template <class Field>
double step(Field&& f, double t, double h, const double* y0, std::vector<double>* k, double* y1, double* y_stage,
            std::size_t p, double rtol, double atol) {
    rk::stages<A, C, 1, STAGES>(f, t, h, y0, k, y1, y_stage, p);
    double err = 0.0;
    for (std::size_t q = 0; q < p; ++q) {
        double e = 0.0;
        for (int s = 0; s < STAGES; ++s) e += E[s] * k[s][q];
        const double sc = atol + rtol * std::max(std::abs(y0[q]), std::abs(y1[q]));
        err += (h * e / sc) * (h * e / sc);
    }
    return std::sqrt(err / static_cast<double>(p));
}

}  // namespace fastflow::dopri5
