// Dual numbers v + sum_k d_k eps_k (eps_j eps_k = 0), K directions at once. A network's own forward and backward
// passes, run on them with theta moved along K directions, give those directional derivatives of its gradient
// exactly: K Hessian-vector products (Pearlmutter's R-operator), with no architecture-specific second derivatives to
// write and keep in step. Each derivative takes the operations a single direction's would; the value's are shared.
#pragma once
#include <array>
#include <cstddef>

namespace fastflow {

template <std::size_t K>
struct Dual {
    double v = 0.0;
    std::array<double, K> d{};
    Dual(double value = 0.0) : v(value) {}
    Dual& operator+=(const Dual& b) {
        v += b.v;
        for (std::size_t k = 0; k < K; ++k) d[k] += b.d[k];
        return *this;
    }
    // friends, so that a double converts to a constant (d = 0) on either side
    friend Dual operator+(Dual a, const Dual& b) { return a += b; }
    friend Dual operator*(const Dual& a, const Dual& b) {
        Dual r(a.v * b.v);
        for (std::size_t k = 0; k < K; ++k) r.d[k] = a.v * b.d[k] + a.d[k] * b.v;
        return r;
    }
    friend bool operator>(const Dual& a, double b) { return a.v > b; }
    // a term that can be skipped must vanish with its derivatives
    friend bool nonzero(const Dual& x) {
        bool any = x.v != 0.0;
        for (std::size_t k = 0; k < K; ++k) any = any || x.d[k] != 0.0;
        return any;
    }
};

inline bool nonzero(double x) { return x != 0.0; }

}  // namespace fastflow
