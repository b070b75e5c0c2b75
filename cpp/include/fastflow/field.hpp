// The smooth velocity F = -(dt/dtau) grad L at fixed slopes, and the loss in log space. It owns the per-sample
// outputs and weights of its last evaluation (sliding reads them) and counts its evaluations.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "loss.hpp"
#include "time_map.hpp"
#include "types.hpp"

namespace fastflow {

class Field {
public:
    explicit Field(const Problem& pb)
        : pb_(pb), out_(pb.n * pb.c), G_(pb.n * pb.c), logl_(pb.n * pb.c), sample_out_(pb.n * pb.c),
          sample_G_(pb.n * pb.c), sample_logl_(pb.n * pb.c), scratch_(pb.model.scratch_size()) {}

    // An event's decisions and the restart after it ask again for the field they last evaluated (the same state
    // and slopes): it is kept, and given back without a new evaluation. So is a change of slopes of switches
    // declared on their surfaces at this state (see on_surfaces).
    void evaluate(double tau, const double* th, const double* slopes, double* F) {
        const std::size_t p = pb_.p, ns = pb_.NS;
        if (kept_ && tau == kept_tau_ && std::equal(th, th + p, kept_theta_.begin()) &&
            (std::equal(slopes, slopes + ns, kept_slopes_.begin()) || reslope(th, slopes))) {
            std::copy(kept_F_.begin(), kept_F_.end(), F);
            return;
        }
        ++evaluations_;
        pb_.model.forward(th, pb_.X, pb_.n, slopes, out_.data(), scratch_.data());
        weigh(tau);
        pb_.model.vjp_after_forward(th, pb_.X, pb_.n, slopes, G_.data(), F, scratch_.data());
        kept_ = keep_next_, keep_next_ = true;
        if (!kept_) return;
        kept_tau_ = tau;
        kept_theta_.assign(th, th + p);
        kept_slopes_.assign(slopes, slopes + ns);
        kept_F_.assign(F, F + p);
    }

    // The switches `set` are on their surfaces (h = 0) at th. Models whose switches' slopes touch only their unit's
    // block (two-layer nets): a slope there changes no output, hence no loss weight, and the field is affine in it,
    // F(s) = F(0) + s D (D: the switch's slope direction), so an event's decisions re-slope the kept field instead
    // of evaluating the net again. Holds until the next call.
    void on_surfaces(const double* th, const std::vector<std::size_t>& set) {
        if (pb_.model.unit_block_size() == 0) return;
        surface_.assign(pb_.NS, false);
        for (std::size_t k : set) surface_[k] = true;
        surface_theta_.assign(th, th + pb_.p);
    }

    // log L at th for an evaluation time (t_eval), not counted: the kept field and its outputs and weights stay as
    // they are, so that asking for samples never changes the run
    double sample_log_loss(double tau, const double* th, const double* slopes) {
        std::swap(out_, sample_out_), std::swap(G_, sample_G_), std::swap(logl_, sample_logl_);
        const double kept_log_loss = logL_;
        const bool kept_known = log_loss_known_;
        const double out = log_loss_at(tau, th, slopes, false);
        std::swap(out_, sample_out_), std::swap(G_, sample_G_), std::swap(logl_, sample_logl_);
        logL_ = kept_log_loss, log_loss_known_ = kept_known;
        return out;
    }

    // log L at th, with the outputs and weights there (not counted: no gradient)
    double log_loss_at(double tau, const double* th, const double* slopes, bool replaces_kept = true) {
        if (replaces_kept) kept_ = false;  // the outputs and weights are no longer the kept field's
        pb_.model.forward(th, pb_.X, pb_.n, slopes, out_.data(), scratch_.data());
        weigh(tau);
        return log_loss();
    }

    // log L of the last evaluation, computed when first asked for: most evaluations are a step's stages, which
    // need the weights only, not a logarithm of every sample's loss
    double log_loss() {
        if (!log_loss_known_) {
            const std::size_t m = pb_.n * pb_.c;
            if (pb_.opt.loss == Loss::square) {
                double s = 0.0;
                for (std::size_t q = 0; q < m; ++q) s += G_[q] * G_[q];  // G: the residuals
                logL_ = std::log(0.5 * s);
            } else {
                for (std::size_t q = 0; q < m; ++q) logl_[q] = log_ell(pb_.opt.loss, pb_.Y[q] * out_[q]);
                logL_ = log_sum_exp(logl_.data(), m);
            }
            log_loss_known_ = true;
        }
        return logL_;
    }
    const double* outputs() const { return out_.data(); }
    const double* weights() const { return G_.data(); }  // G = -(dt/dtau) dL/dPhi, per sample and output
    double* scratch() { return scratch_.data(); }     // the model's workspace, for callers evaluating it directly
    // A power of two that brings the weights to order one where all of them are far below float64's normal range
    // (margins of hundreds: e^-500). Products of two field-sized terms (Gram matrices, squared norms) underflow
    // there, and scaled by it they do not, exactly. 1 elsewhere.
    double weight_unit() const {
        double largest = 0.0;
        for (double g : G_) largest = std::max(largest, std::abs(g));
        return largest > 0.0 && largest < 0x1p-256 ? std::ldexp(1.0, -std::ilogb(largest)) : 1.0;
    }
    // The next evaluation's state will not be asked for again (a Runge-Kutta stage inside a step): it is not kept,
    // which spares copying its slopes (one per switch) at every stage
    void forget_next() { keep_next_ = false; }
    std::size_t evaluations() const { return evaluations_; }
    void count_evaluation(std::size_t count = 1) { evaluations_ += count; }
    void reset_count() { evaluations_ = 0, kept_ = false; }  // a new run

private:
    // the kept field moved to `slopes` at the kept state, if they differ from its own only at switches on their
    // surfaces there (on_surfaces)
    bool reslope(const double* th, const double* slopes) {
        if (surface_.empty() || !std::equal(th, th + pb_.p, surface_theta_.begin())) return false;
        for (std::size_t k = 0; k < pb_.NS; ++k)
            if (slopes[k] != kept_slopes_[k] && !surface_[k]) return false;
        const std::size_t len = pb_.model.unit_block_size();
        direction_.resize(len);
        for (std::size_t k = 0; k < pb_.NS; ++k) {
            if (slopes[k] == kept_slopes_[k]) continue;
            pb_.model.slope_direction_block(th, pb_.X, k, G_.data(), direction_.data());
            double* block = kept_F_.data() + pb_.model.unit_block_offset(k % pb_.H);
            const double change = slopes[k] - kept_slopes_[k];
            for (std::size_t q = 0; q < len; ++q) block[q] += change * direction_[q];
            kept_slopes_[k] = slopes[k];
        }
        return true;
    }

    // G = -(dt/dtau) dL/dPhi, computed in log space (log L: log_loss())
    void weigh(double tau) {
        const std::size_t m = pb_.n * pb_.c;
        log_loss_known_ = false;
        if (pb_.opt.loss == Loss::square) {
            for (std::size_t q = 0; q < m; ++q) G_[q] = pb_.Y[q] - out_[q];
            return;
        }
        // binary (d_out = 1) or one-vs-all (Y_ik = +-1 for every output k): L = sum_ik l(Y_ik Phi_ik)
        const double logfac = log_time_factor(pb_.opt.loss, tau), factor = std::exp(logfac);
        for (std::size_t q = 0; q < m; ++q)
            G_[q] = pb_.Y[q] * sample_weight(pb_.opt.loss, pb_.Y[q] * out_[q], logfac, factor);
    }

    const Problem& pb_;
    std::vector<double> out_, G_, logl_, sample_out_, sample_G_, sample_logl_, scratch_;
    double logL_ = 0.0;
    bool log_loss_known_ = false;  // logL_ is that of out_ and G_
    bool kept_ = false;  // the last evaluation, given back when asked for again
    bool keep_next_ = true;
    double kept_tau_ = 0.0;
    std::vector<double> kept_theta_, kept_slopes_, kept_F_;
    std::vector<bool> surface_;  // switches on their surfaces at surface_theta_ (on_surfaces)
    std::vector<double> surface_theta_, direction_;
    std::size_t evaluations_ = 0;
};

}  // namespace fastflow
