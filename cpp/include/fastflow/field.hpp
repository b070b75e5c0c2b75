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
        : pb_(pb), out_(pb.n * pb.c), G_(pb.n * pb.c), logl_(pb.n * pb.c), scratch_(pb.model.scratch_size()) {}

    // An event's decisions and the restart after it ask again for the field they last evaluated (the same state
    // and slopes): it is kept, and given back without a new evaluation.
    void evaluate(double tau, const double* th, const double* slopes, double* F) {
        const std::size_t p = pb_.p, ns = pb_.NS;
        if (kept_ && tau == kept_tau_ && std::equal(th, th + p, kept_theta_.begin()) &&
            std::equal(slopes, slopes + ns, kept_slopes_.begin())) {
            std::copy(kept_F_.begin(), kept_F_.end(), F);
            return;
        }
        ++evaluations_;
        pb_.model.forward(th, pb_.X, pb_.n, slopes, out_.data(), scratch_.data());
        weigh(tau);
        pb_.model.vjp(th, pb_.X, pb_.n, slopes, G_.data(), F, scratch_.data());
        kept_ = true, kept_tau_ = tau;
        kept_theta_.assign(th, th + p);
        kept_slopes_.assign(slopes, slopes + ns);
        kept_F_.assign(F, F + p);
    }

    // log L at th, with the outputs and weights there (not counted: no gradient)
    double log_loss_at(double tau, const double* th, const double* slopes) {
        kept_ = false;  // the outputs and weights are no longer the kept field's
        pb_.model.forward(th, pb_.X, pb_.n, slopes, out_.data(), scratch_.data());
        weigh(tau);
        return logL_;
    }

    double log_loss() const { return logL_; }  // of the last evaluation
    const double* outputs() const { return out_.data(); }
    const double* weights() const { return G_.data(); }  // G = -(dt/dtau) dL/dPhi, per sample and output
    double* scratch() { return scratch_.data(); }     // the model's workspace, for callers evaluating it directly
    std::size_t evaluations() const { return evaluations_; }
    void count_evaluation(std::size_t count = 1) { evaluations_ += count; }
    void reset_count() { evaluations_ = 0, kept_ = false; }  // a new run

private:
    // G = -(dt/dtau) dL/dPhi, computed in log space; also log L
    void weigh(double tau) {
        const std::size_t m = pb_.n * pb_.c;
        if (pb_.opt.loss == Loss::square) {
            double s = 0.0;
            for (std::size_t q = 0; q < m; ++q) {
                G_[q] = pb_.Y[q] - out_[q];
                s += G_[q] * G_[q];
            }
            logL_ = std::log(0.5 * s);
            return;
        }
        // binary (d_out = 1) or one-vs-all (Y_ik = +-1 for every output k): L = sum_ik l(Y_ik Phi_ik)
        const double logfac = log_time_factor(pb_.opt.loss, tau);
        for (std::size_t q = 0; q < m; ++q) {
            const double margin = pb_.Y[q] * out_[q];
            logl_[q] = log_ell(pb_.opt.loss, margin);
            G_[q] = pb_.Y[q] * std::exp(logfac + log_neg_dell(pb_.opt.loss, margin));
        }
        logL_ = log_sum_exp(logl_.data(), m);
    }

    const Problem& pb_;
    std::vector<double> out_, G_, logl_, scratch_;
    double logL_ = 0.0;
    bool kept_ = false;  // the last evaluation, given back when asked for again
    double kept_tau_ = 0.0;
    std::vector<double> kept_theta_, kept_slopes_, kept_F_;
    std::size_t evaluations_ = 0;
};

}  // namespace fastflow
