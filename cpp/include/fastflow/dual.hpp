// Dual numbers v + d eps (eps^2 = 0). A network's own forward and backward passes, run on them with theta moved
// along a direction, give that directional derivative of its gradient exactly: a Hessian-vector product
// (Pearlmutter's R-operator), with no architecture-specific second derivatives to write and keep in step.
#pragma once

namespace fastflow {

struct Dual {
    double v = 0.0, d = 0.0;
    Dual(double value = 0.0, double derivative = 0.0) : v(value), d(derivative) {}
    Dual& operator+=(Dual b) {
        v += b.v, d += b.d;
        return *this;
    }
};

inline Dual operator+(Dual a, Dual b) { return {a.v + b.v, a.d + b.d}; }
inline Dual operator*(Dual a, Dual b) { return {a.v * b.v, a.v * b.d + a.d * b.v}; }
inline bool operator>(Dual a, double b) { return a.v > b; }

// a term that can be skipped must vanish with its derivative
inline bool nonzero(double x) { return x != 0.0; }
inline bool nonzero(Dual x) { return x.v != 0.0 || x.d != 0.0; }

}  // namespace fastflow
