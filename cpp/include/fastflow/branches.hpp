// Unstable branches (docs/mathematics.md §2), where gradient flow is not unique and gradient descent leaves what the
// minimal-norm flow keeps; depth-2 nets below, deeper ones in find_on_hull and newly_pinned:
// (a) a sliding surface that turns repulsive. For switch (sample i, unit j) the slope multiplies
//     D = sum_c G_ic W2_cj (the loss weights times the unit's output weights) along the switch's normal, so both
//     one-sided fields point away from the surface exactly when D > 0. Along a step's dense output D is a polynomial
//     for the square loss (G = Y - Phi) and has the sign of y_i W2_j for one-output classification: its first sign
//     change is isolated like a switch's.
// (b) a unit pinned at w_j = 0: the normals (the samples' inputs) of its switches on their surfaces (h_ij = 0 to
//     rounding: sliding, or decided at w_j = 0) come to span the input space.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "geometry.hpp"
#include "linalg.hpp"
#include "loss.hpp"
#include "rk.hpp"
#include "roots.hpp"
#include "sliding.hpp"
#include "switch_state.hpp"
#include "types.hpp"

namespace fastflow {

// a sliding switch whose surface changes between attractive and repulsive at step fraction sigma
struct SurfaceTurn {
    double sigma;
    std::size_t z;
    bool to_repulsive;
};

class BranchWatch {
public:
    BranchWatch(const Problem& pb, const SwitchState& state) : pb_(pb), st_(state) {}

    // one-output classification, or the square loss, on a net whose units feed the output through single weights
    bool watches_sliding() const {
        return pb_.H > 0 && pb_.model.output_weight(0, 0) != Model::npos &&
               (pb_.opt.loss == Loss::square || pb_.c == 1);
    }

    void reset() {
        pinned_.assign(pb_.H, false), on_surface_.assign(pb_.H, {}), rows_.assign(pb_.H, {});
        const std::size_t block = pb_.model.unit_block_size();
        for (std::size_t u = 0; u < pb_.H; ++u) {
            if (block == 0) {
                rows_[u] = pb_.model.incoming_row(u);
                continue;
            }
            for (std::size_t a = 0; a < block; ++a) rows_[u].push_back(pb_.model.unit_block_offset(u) + a);
        }
        const std::size_t d_in = pb_.model.d_in();
        input_l1_.assign(pb_.n, 0.0);
        for (std::size_t i = 0; i < pb_.n; ++i)
            for (std::size_t l = 0; l < d_in; ++l) input_l1_[i] += std::abs(pb_.X[i * d_in + l]);
    }

    // every sliding switch whose D changes sign within the step (dense output coef of degree deg)
    void find(const double* coef, int deg, std::vector<SurfaceTurn>& turns) {
        if (!watches_sliding()) return;
        const std::size_t p = pb_.p, c = pb_.c, H = pb_.H, d = pb_.model.d_in(), phi_deg = 2 * deg;
        const bool square = pb_.opt.loss == Loss::square;
        const std::size_t g_deg = square ? phi_deg + deg : deg;
        const double rtol = pb_.opt.rtol + 64.0 * std::numeric_limits<double>::epsilon(), atol = pb_.opt.atol;
        // the dense output holds each weight to about the tolerance of the whole state (its error norm mixes the
        // components): an output weight tending to 0 must not cross it on that error
        double size = 0.0;
        for (std::size_t q = 0; q < p; ++q) size = std::max(size, std::abs(coef[q]));
        const double dv = dense_error * (atol + rtol * size);
        std::vector<double> phi(c * (phi_deg + 1)), phi_noise(c), g(g_deg + 1);
        std::size_t sample = pb_.n;  // whose outputs phi holds: Z is sorted, so a sample's switches come together
        for (std::size_t z : st_.Z) {
            const std::size_t i = z / H, unit = z % H;
            if (square && i != sample) {
                pb_.model.output_polynomials(coef, deg, pb_.X + i * d, st_.slopes.data() + i * H, phi.data());
                for (std::size_t o = 0; o < c; ++o) phi_noise[o] = output_noise(coef, i, o, rtol, atol);
                sample = i;
            }
            std::fill(g.begin(), g.end(), 0.0);
            // D's noise at the step's start: what a state error at the tolerance moves it by (near a minimum the
            // residuals, and with them D, are that noise)
            double noise = 0.0;
            for (std::size_t o = 0; o < c; ++o) {
                const std::size_t w = pb_.model.output_weight(unit, o);
                const double y = pb_.Y[i * c + o], v = coef[w];
                if (!square) {
                    for (int m = 0; m <= deg; ++m) g[m] += y * coef[m * p + w];
                    noise += dv;
                    continue;
                }
                for (std::size_t a = 0; a <= phi_deg; ++a) {
                    const double r = (a == 0 ? y : 0.0) - phi[o * (phi_deg + 1) + a];
                    for (int m = 0; m <= deg; ++m) g[a + m] += r * coef[m * p + w];
                }
                const double residual = y - phi[o * (phi_deg + 1)];
                noise += phi_noise[o] * std::abs(v) + std::abs(residual) * dv;
            }
            // watch for the sign D does not have at the start: the flag set where it last turned decides within
            // the noise of 0 (right after a turn), the sign itself beyond. Leave mode watches for D past
            // leave_lead noise levels instead (the side is read off the slide's multiplier, 0/0 at D = 0), where
            // the surface is left. A slide already there (to rounding: one the leave rule could not take off, a
            // duplicated sample's) is not watched again, or it would be found at once each step.
            const bool leave = pb_.opt.leave_branches;
            const bool repulsive =
                !leave && (std::abs(g[0]) > noise ? g[0] > 0.0 : static_cast<bool>(st_.branch[z]));
            if (repulsive)
                for (double& v : g) v = -v;
            if (leave && (g[0] -= leave_lead * noise) > -noise) continue;
            const double sigma = first_violation(g.data(), static_cast<int>(g_deg), noise);
            if (sigma >= 0.0) turns.push_back({sigma, z, !repulsive});
        }
    }

    // Deeper nets, sliding on the hull: the same watch on nd (Hull::shared_slope, each surface once with the
    // switches that share it), whose sign says whether the surface attracts. It has no polynomial form here: it is
    // read at the step's ends (a turn and its return within one step are missed), and a change of sign bisected.
    // Only surfaces whose switches slide alone in their samples are watched: there nd holds no corral weights. With
    // others, nd is averaged over the corral's corners, which are not unique where the hull is degenerate, and it
    // jumped by percents between nearby states (false turns, each step).
    void find_on_hull(const double* coef, int deg, const SwitchGeometry& geometry, Sliding& sliding,
                      std::vector<SurfaceTurn>& turns) {
        if (pb_.model.linear_switches()) return;
        const std::size_t p = pb_.p, c = pb_.c, d = pb_.model.d_in();
        const double rtol = pb_.opt.rtol + 64.0 * std::numeric_limits<double>::epsilon();
        theta_.resize(p), G_.assign(pb_.n * c, 0.0), out_.resize(c), scratch_.resize(pb_.model.scratch_size());
        for (std::size_t z : st_.Z) {
            if (!sliding.hull().slope_is_local(z)) continue;
            const std::vector<std::size_t> shared = geometry.shared_surface(coef, st_.slopes.data(), z, st_.Z);
            if (*std::min_element(shared.begin(), shared.end()) != z) continue;  // read once
            if (!sliding.hull().slope_is_local(shared)) continue;
            double noise = 0.0;
            // nd at step fraction sigma (noise <- its noise there)
            auto watched = [&](double sigma) {
                rk::dense_eval(coef, deg, p, sigma, theta_.data());
                sample_weights(shared, d, c);
                const Hull::Slope hs = sliding.hull().shared_slope(shared, theta_.data(), st_.slopes.data(), G_.data());
                noise = dense_error * rtol * hs.scale;
                return hs.nd;
            };
            const double start = watched(0.0);
            if (pb_.opt.leave_branches) {  // past leave_lead noise levels, as find does (one already there is not)
                auto past = [&](double sigma) { return watched(sigma) - leave_lead * noise; };
                if (start - leave_lead * noise <= -noise && past(1.0) > noise)
                    turns.push_back({bisect_crossing(past, 0.0, 1.0), z, true});
                continue;
            }
            // (a start within the noise, right after a turn, takes the side the flag set there gives: the turn is
            // not found again)
            const bool repulsive = std::abs(start) > noise ? start > 0.0 : static_cast<bool>(st_.branch[z]);
            // negated where the surface repels: a turn is where g rises past 0
            auto g = [&](double sigma) { return repulsive ? -watched(sigma) : watched(sigma); };
            if (g(1.0) > noise) turns.push_back({bisect_crossing(g, 0.0, 1.0), z, !repulsive});
        }
    }

    // Classification with several outputs: D_ij = sum_o y_io w(y_io Phi_io) W2_oj does not factor, and where it
    // crosses 0 while the slide's inactive-side speed b does not, its multiplier s = -b / (D_ij |x_i|^2) has a pole:
    // s left [0,1] just before it (past 1 for b > 0, an exit up). The window can be far shorter than a step, whose
    // stages then never see it. hints += step fractions closing in on every crossing of D in the step, where
    // Locator::slide_exit looks for the exit.
    void pole_hints(const double* coef, int deg, std::vector<double>& hints) const {
        if (pb_.c == 1 || !is_classification(pb_.opt.loss) || !pb_.model.linear_switches() ||
            pb_.model.output_weight(0, 0) == Model::npos)
            return;
        constexpr int bisections = 60, approaches = 40;
        const std::size_t p = pb_.p, c = pb_.c, H = pb_.H, d = pb_.model.d_in(), stride = 2 * deg + 1;
        std::vector<double> phi(c * stride), log_w(c), v(c * (deg + 1));
        std::size_t sample = pb_.n;  // whose outputs phi holds: Z is sorted, so a sample's switches come together
        for (std::size_t z : st_.Z) {
            const std::size_t i = z / H, unit = z % H;
            if (i != sample)
                pb_.model.output_polynomials(coef, deg, pb_.X + i * d, st_.slopes.data() + i * H, phi.data());
            sample = i;
            for (std::size_t o = 0; o < c; ++o)  // the unit's output weights' polynomials
                for (int m = 0; m <= deg; ++m)
                    v[o * (deg + 1) + m] = coef[static_cast<std::size_t>(m) * p + pb_.model.output_weight(unit, o)];
            // D's sign, its weights scaled by the largest (they under- and overflow alone)
            auto D = [&](double sigma) {
                double largest = -INFINITY, sum = 0.0;
                for (std::size_t o = 0; o < c; ++o) {
                    const double y = pb_.Y[i * c + o];
                    log_w[o] = log_neg_dell(pb_.opt.loss, y * poly_eval(&phi[o * stride], 2 * deg, sigma));
                    largest = std::max(largest, log_w[o]);
                }
                for (std::size_t o = 0; o < c; ++o)
                    sum += pb_.Y[i * c + o] * std::exp(log_w[o] - largest) * poly_eval(&v[o * (deg + 1)], deg, sigma);
                return sum;
            };
            double lo = 0.0, hi = 1.0;
            const bool start_positive = D(lo) > 0.0;
            if ((D(hi) > 0.0) == start_positive) continue;
            for (int k = 0; k < bisections; ++k) {
                const double mid = 0.5 * (lo + hi);
                ((D(mid) > 0.0) == start_positive ? lo : hi) = mid;
            }
            for (int m = 1; m <= approaches; ++m) hints.push_back(lo * (1.0 - std::ldexp(1.0, -m)));
        }
    }

    // The units just pinned at w = 0 (the inputs of their samples whose switches are on their surfaces span the
    // input space), for nets whose switches of a unit touch only its own block, and deeper nets whose units' incoming
    // weights are their own parameters (Model::incoming_row: at w = 0 a switch's normal is its sample's input to the
    // layer, on that row alone): one of those switches per unit. Looked at again: the units `touched` by the event,
    // and those with weights at the rounding of 0 (a unit carried there brings its switches to their surfaces
    // without an event of its own).
    std::vector<std::size_t> newly_pinned(SwitchGeometry& geometry, const double* theta,
                                          const std::vector<bool>& touched) {
        const std::size_t H = pb_.H;
        std::vector<std::size_t> out;
        const bool blocks = pb_.model.unit_block_size() > 0;
        if (!blocks && pb_.model.linear_switches()) return out;  // shared depth-2 weights: not watched
        constexpr double eps = std::numeric_limits<double>::epsilon();
        // a unit carried to w = 0 keeps a rounding residue (~1e-34) far beyond its own band: on a surface is also
        // within the rounding of the state's scale, 32 eps |x_i|_1 max |theta|
        double size = 0.0;
        for (std::size_t q = 0; q < pb_.p; ++q) size = std::max(size, std::abs(theta[q]));
        std::vector<double> floor(pb_.n);
        for (std::size_t i = 0; i < pb_.n; ++i) floor[i] = input_l1_[i] * (32.0 * eps * size);
        // (deeper nets: those only, as a sample whose input to the layer is a rounding residue is on its surface
        // with any weights, and such inputs can span the row's space)
        std::vector<bool> look(blocks ? touched : std::vector<bool>(H, false));
        std::vector<double> row;
        for (std::size_t u = 0; u < H; ++u) {
            const std::size_t d = rows_[u].size();
            row.resize(d);
            for (std::size_t a = 0; a < d; ++a) row[a] = theta[rows_[u][a]];
            if (d > 0 && norm2(row.data(), d) <= 32.0 * eps * static_cast<double>(d) * size) look[u] = true;
        }
        for (std::size_t u = 0; u < H; ++u)
            if (look[u]) on_surface_[u].clear();
        for (std::size_t k : geometry.in_bands(theta, st_.slopes.data(), look, {}, floor))
            on_surface_[k % H].push_back(k);
        std::vector<double> N, gram, x, normal(blocks ? 0 : pb_.p);
        for (std::size_t u = 0; u < H; ++u) {
            const std::size_t d = rows_[u].size();
            if (!blocks && !look[u]) pinned_[u] = false;  // released (its row left 0)
            if (!look[u] || d == 0) continue;
            const std::vector<std::size_t>& on = on_surface_[u];
            const std::size_t k = on.size();
            bool pinned = false;
            if (k >= d) {
                N.resize(k * d);
                for (std::size_t a = 0; a < k; ++a) {
                    if (blocks) {
                        std::copy_n(pb_.model.fixed_normal(pb_.X, on[a]), d, &N[a * d]);
                        continue;
                    }
                    pb_.model.switch_normal(theta, pb_.X, st_.slopes.data(), on[a], normal.data());
                    for (std::size_t b = 0; b < d; ++b) N[a * d + b] = normal[rows_[u][b]];
                }
                gram_matrix(N.data(), k, d, gram);
                pinned = solve_psd(gram, std::vector<double>(k, 0.0), k, x) == d;
            }
            if (pinned && !pinned_[u]) out.push_back(on.front());
            pinned_[u] = pinned;
        }
        return out;
    }

    // the switches of unit u on their surfaces at the last newly_pinned (sample-major)
    const std::vector<std::size_t>& on_surface(std::size_t u) const { return on_surface_[u]; }

    // Leave mode, a pinned unit at w = 0 with switches `on` on their surfaces: which of them leave active (none:
    // the unit stays), at theta with the loss weights G there. On pattern A its block's field is
    // F_A = sum_{a in A} D_a x_a (D_a x_a: switch a's slope direction), and L falls at |F_A|^2 along it; the unit
    // can leave along F_A when every sample moves to its side (x_k . F_A > 0 exactly for k in A). Gradient
    // descent's steps from a tiny w settle on such a pattern, A <- {k : x_k . F_A > 0}. The one of largest |F_A|
    // is taken, if L falls beyond what a state error at the tolerance moves the field by: among all 2^k patterns
    // up to max_exhaustive switches, past that among the fixed points of that iteration from each sample alone.
    // Up to max_exhaustive_sliding switches also the rays on one switch's surface: with S's surface attracting
    // between F_A and F_A + r_S (x_S . F_A > 0 > x_S . (F_A + r_S)), the unit slides on it along
    // V = F_A + s r_S, s = x_S . F_A / (x_S . F_A - x_S . (F_A + r_S)), and leaves along V when every other sample
    // moves to its side (`benchmarks/branches.py --deep`, seed 0, problem 174: gradient descent's first-layer unit
    // left with one sample on its surface). (Deeper nets: at w = 0 the unit's output is 0 on either side, so its
    // slopes move its own row alone, and the sample's input to the layer plays x's part.)
    struct Pattern {
        std::vector<bool> up;                  // per switch of `on`: active (empty: the unit stays)
        std::size_t sliding = Model::npos;     // the position in `on` of the switch that slides, if one does
    };
    Pattern leave_pattern(const std::vector<std::size_t>& on, const double* theta, const double* G) const {
        const std::vector<std::size_t>& row = rows_[on.front() % pb_.H];
        const std::size_t k = on.size(), d = row.size();
        const bool blocks = pb_.model.unit_block_size() > 0;
        std::vector<double> r(k * d), x(k * d), F(d), full(blocks ? 0 : pb_.p);
        double size = 0.0, inputs = 0.0;
        for (std::size_t q = 0; q < pb_.p; ++q) size = std::max(size, std::abs(theta[q]));
        for (std::size_t a = 0; a < k; ++a) {
            if (blocks) {
                pb_.model.slope_direction_block(theta, pb_.X, on[a], G, &r[a * d]);
                std::copy_n(pb_.model.fixed_normal(pb_.X, on[a]), d, &x[a * d]);
            } else {
                pb_.model.slope_direction(theta, pb_.X, st_.slopes.data(), on[a], G, full.data());
                for (std::size_t b = 0; b < d; ++b) r[a * d + b] = full[row[b]];
                pb_.model.switch_normal(theta, pb_.X, st_.slopes.data(), on[a], full.data());
                for (std::size_t b = 0; b < d; ++b) x[a * d + b] = full[row[b]];
            }
            inputs += norm2(&x[a * d], d);
        }
        Pattern best;
        double best_norm = dense_error * (pb_.opt.atol + pb_.opt.rtol * size) * inputs;
        // whether every switch but `skip` moves to its side of A along V
        auto consistent = [&](const std::vector<bool>& A, const std::vector<double>& V, double vnorm,
                              std::size_t skip = Model::npos) {
            for (std::size_t b = 0; b < k; ++b)
                if (b != skip && (dot(&x[b * d], V.data(), d) > 1e-12 * norm2(&x[b * d], d) * vnorm) != A[b])
                    return false;
            return true;
        };
        std::vector<double> V(d);
        // A with switch b sliding: V <- the velocity on its surface and its norm, or 0 where it does not attract
        auto sliding_on = [&](std::size_t b) {
            const double below = dot(&x[b * d], F.data(), d), above = below + dot(&x[b * d], &r[b * d], d);
            if (!(below > 0.0 && above < 0.0)) return 0.0;
            const double s = below / (below - above);
            for (std::size_t l = 0; l < d; ++l) V[l] = F[l] + s * r[b * d + l];
            return norm2(V.data(), d);
        };
        auto field_on = [&](const std::vector<bool>& A) {
            std::fill(F.begin(), F.end(), 0.0);
            for (std::size_t a = 0; a < k; ++a)
                if (A[a])
                    for (std::size_t l = 0; l < d; ++l) F[l] += r[a * d + l];
            return norm2(F.data(), d);
        };
        if (k <= max_exhaustive) {  // every pattern (the iteration below missed one: fuzz draw 16:7)
            std::vector<bool> A(k);
            for (std::uint64_t mask = 1; mask < (std::uint64_t{1} << k); ++mask) {
                for (std::size_t a = 0; a < k; ++a) A[a] = (mask >> a) & 1U;
                const double fnorm = field_on(A);
                if (fnorm > best_norm && consistent(A, F, fnorm)) best = {A, Model::npos}, best_norm = fnorm;
                if (k > max_exhaustive_sliding) continue;
                for (std::size_t b = 0; b < k; ++b) {
                    if (A[b]) continue;
                    const double vnorm = sliding_on(b);
                    if (vnorm > best_norm && consistent(A, V, vnorm, b)) best = {A, b}, best_norm = vnorm;
                }
            }
            return best;
        }
        for (std::size_t start = 0; start < k; ++start) {
            std::vector<bool> A(k, false), next(k);
            A[start] = true;
            for (std::size_t iter = 0; iter <= k; ++iter) {
                const double fnorm = field_on(A);
                for (std::size_t b = 0; b < k; ++b)
                    next[b] = dot(&x[b * d], F.data(), d) > 1e-12 * norm2(&x[b * d], d) * fnorm;
                if (next != A) {
                    A = next;
                    continue;
                }
                if (fnorm > best_norm) best = {A, Model::npos}, best_norm = fnorm;
                break;
            }
        }
        return best;
    }

private:
    static constexpr double dense_error = 16.0;  // the dense output's error, in units of the step's tolerance
    static constexpr double leave_lead = 64.0;   // leave mode: D's noise levels past which a surface is left
    static constexpr std::size_t max_exhaustive = 16;  // leave_pattern: switches whose 2^k patterns are all tried
    static constexpr std::size_t max_exhaustive_sliding = 12;  // ... and their rays on one switch's surface

    // how far a state error at the tolerance moves output o of sample i at theta (coef's first row): each term
    // W2_oj s_j h_ij by the relative error of both factors (h_ij's terms: its switch scale)
    double output_noise(const double* theta, std::size_t i, std::size_t o, double rtol, double atol) const {
        const std::size_t d = pb_.model.d_in(), H = pb_.H;
        double inputs = 0.0;
        for (std::size_t l = 0; l < d; ++l) inputs += std::abs(pb_.X[i * d + l]);
        double noise = 0.0;
        for (std::size_t j = 0; j < H; ++j) {
            const double s = st_.slopes[i * H + j], v = std::abs(theta[pb_.model.output_weight(j, o)]);
            if (s == 0.0) continue;
            const double terms = pb_.model.switch_scale(theta, pb_.X, st_.slopes.data(), i * H + j);
            noise += s * (2.0 * rtol * v * terms + atol * (terms + v * inputs));
        }
        return noise;
    }

    // G_ rows of the samples of `switches` <- their loss weights at theta_, up to one positive factor common to them
    // all: a shared surface sums their rates, whose sign then depends on the weights' ratios across the samples (each
    // scaled to its own largest, an attracting and a repelling sample of one surface read as a turn off its time)
    void sample_weights(const std::vector<std::size_t>& switches, std::size_t d, std::size_t c) {
        const bool classification = is_classification(pb_.opt.loss);
        double largest = -INFINITY;
        for (std::size_t b : switches) {
            const std::size_t i = b / pb_.H;
            pb_.model.forward(theta_.data(), pb_.X + i * d, 1, st_.slopes.data() + i * pb_.H, out_.data(),
                              scratch_.data());
            double* g = &G_[i * c];
            for (std::size_t o = 0; o < c; ++o) {
                if (!classification) g[o] = pb_.Y[i * c + o] - out_[o];
                else largest = std::max(largest, g[o] = log_neg_dell(pb_.opt.loss, pb_.Y[i * c + o] * out_[o]));
            }
        }
        if (!classification) return;
        for (std::size_t b : switches)
            for (std::size_t o = 0, i = b / pb_.H; o < c; ++o)
                G_[i * c + o] = pb_.Y[i * c + o] * std::exp(G_[i * c + o] - largest);
    }

    const Problem& pb_;
    const SwitchState& st_;
    std::vector<double> theta_, G_, out_, scratch_;  // find_on_hull's
    std::vector<bool> pinned_;  // per unit
    std::vector<double> input_l1_;  // per sample: |x_i|_1
    std::vector<std::vector<std::size_t>> rows_;  // per unit: its incoming weights' parameters (none: not watched)
    std::vector<std::vector<std::size_t>> on_surface_;  // per unit
};

}  // namespace fastflow
