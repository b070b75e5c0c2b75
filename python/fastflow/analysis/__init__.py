"""`analyze`: is the limit of a flow a global, a local, or not even a local optimum of the max-margin problem?

Scope: homogeneous networks of the class N (the margin paper, Vardi, Shamir, Srebro, "VSS", section 2: any depth
L, structural zeros and shared weights within a layer; no bias, no skip connection), ReLU or linear, d_out = 1,
binary labels +-1:

    (P)   min 1/2 ||theta||^2   s.t.   q_i(theta) = y_i Phi(theta; x_i) >= 1   for all i.

A flow on the exponential or logistic loss converges in direction to a KKT point of (P) (Lyu & Li), but only like
1/log t, and neurons that lose the competition die like a power of log t. `analyze` normalises theta to margin 1
(theta_raw = theta (min_i q_i)^(-1/L)), reads candidate patterns off it (support, zero pre-activations, zero neurons,
for a ladder of thresholds), solves the KKT system of each pattern to machine precision (Levenberg-Marquardt, with
active-set corrections), keeps the KKT point closest to theta_raw ("polishing"), and classifies that point. The
fully connected two-layer net has closed forms in NumPy; every other net goes through the C++ model's per-sample
Jacobians for a given activation pattern. The files follow these steps: model (and classn), kkt, polish (and
polish_classn), certificates with one competitors_* file per family, optimum (and optimum_classn), local, layers
(and layers_classn), verdict; horizon flows on until the verdict is one of the limit. Every verdict comes with its
certificate:

* "global":    theta~ is feasible and ||theta~||^2 is within `global_rtol` of a certified lower bound on ||theta*||^2:
               two-layer ReLU: the convex program of the convex-geometry paper (Wang & Pilanci, Prop. 2, over all
               arrangements by `fastflow.convex`) or weak duality for the KKT multipliers (WP Thm 3); linear nets
               without sharing: L ||u*||^(2/L) with u* the hard-margin SVM (the optimum for fully connected nets,
               margin paper Thm 3.1) and, at depth 2, weak duality of the group-norm program (Problem (8); an LP for
               diagonal nets). No bound for deep ReLU nets or shared weights: the evidence says so.
* "not_kkt":   the KKT residual is above `kkt_tol` (typically: polishing failed and theta_raw is a late point that is
               KKT only up to O(1/log t); `analyze_limit` decides whether that is the limit's verdict).
* "not_local": explicit feasible points theta' (margins recomputed with net.forward) with ||theta' - theta~|| <= r
               and ||theta'|| < ||theta~|| for r = eps, eps/4 and eps/16 — a family shrinking to theta~, as in the
               papers' proofs — found from the papers' competitor families (a zero neuron turned on along an
               infeasible dual direction, Thm 3.2; neurons tilted onto touched samples, Thm 4.2(2); path products
               rebalanced, Thms 4.1 and 5.1; negative curvature of the reduced Hessian, e.g. Thm 4.4) and random
               perturbations, by SLSQP on min ||theta||^2 s.t. q >= 1, ||theta - theta~|| <= r, followed by an exact
               restoration of the active margins.
* "local":     margin paper Thm 4.3 (depth 2, ReLU, no sharing, every pre-activation non-zero), or the second-order
               sufficient condition of the pattern's smooth problem (positive definite reduced Hessian of the
               Lagrangian; no support sample on a switching surface), its smallest eigenvalue as evidence.
* "kkt_only":  KKT holds and nothing above was certified either way.
* "undecided": a budget ran out first — polishing's (the KKT point closest to theta_raw is then not known) or
               the certificate search's (a KKT point without a certificate or a sufficient condition;
               the evidence lists the starts not finished) — or, from `analyze_limit`, no two successive horizons
               agreed within its budget.

Each layer also gets a verdict for margin paper Problem (4), the max-margin problem in that layer with the others
fixed (`LayerReport`): on each activation pattern of the units the layer feeds, the margins are linear in it, so the
problem is decided by least-distance programs over the patterns around theta~ (local) or over all of them where
affordable (global); a linear layer is one convex program. A KKT point of (P) can be optimal for each layer and still
not a local optimum of (P) (Thm 3.2's limit: improving it needs two layers), and need not be optimal for a layer
(Thm 5.3; Lemma C.6: local, not global).
"""
from .certificates import Certificate
from .horizon import LimitReport, analyze_limit
from .kkt import kkt_residual
from .model import classifies
from .layers import LayerReport
from .verdict import VERDICTS, Report, analyze

__all__ = ["VERDICTS", "Certificate", "LayerReport", "LimitReport", "Report", "analyze", "analyze_limit", "classifies",
           "kkt_residual"]
