"""`analyze`: is the limit of a flow a global, a local, or not even a local optimum of the max-margin problem?

Scope: fully connected two-layer homogeneous networks Phi(theta; x) = sum_j v_j sigma(w_j . x) (ReLU or linear,
d_out = 1) and binary labels +-1. Notation follows NUMERICS.md section 6 and the margin paper (Vardi, Shamir,
Srebro, "VSS"):

    (P)   min 1/2 ||theta||^2   s.t.   q_i(theta) = y_i Phi(theta; x_i) >= 1   for all i.

A flow on the exponential or logistic loss converges in direction to a KKT point of (P) (Lyu & Li), but only like
1/log t, and neurons that lose the competition die like a power of log t. `analyze` normalises theta to margin 1
(theta_raw), reads candidate patterns off it (support, signs of w_j.x_i, zero neurons, for a ladder of thresholds),
solves the KKT system of each pattern to machine precision (Levenberg-Marquardt, with active-set corrections), keeps
the KKT point closest to theta_raw ("polishing"), and classifies that point. Every verdict comes with its
certificate:

* "global":    theta~ is feasible and ||theta~||^2 is within `global_rtol` of a certified lower bound on ||theta*||^2:
               the dual value of the convex program of the convex-geometry paper (Wang & Pilanci, Prop. 2, solved
               over all arrangements by `fastflow.convex`), or weak duality for the KKT multipliers themselves
               (sum_i lambda_i / max(1, max_{||u||<=1} |lambda^T (Xu)_+|), WP Thm 3) for ReLU; 2 ||u*|| with u* the
               hard-margin SVM for linear nets (VSS Thm 3.1).
* "not_kkt":   the KKT residual is above `kkt_tol` (typically: polishing failed and theta_raw is a late point that is
               KKT only up to O(1/log t); a non-KKT point is never a local optimum).
* "not_local": explicit feasible points theta' (margins recomputed with net.forward) with ||theta' - theta~|| <= r
               and ||theta'|| < ||theta~|| for r = eps, eps/4 and eps/16 — a family shrinking to theta~, as in the
               papers' proofs — found along the papers' directions (turning on a zero neuron along an infeasible
               dual direction, VSS Thm 3.2; tilting neurons onto samples they touch, VSS Thm 4.2(2)) and from small
               random perturbations, by SLSQP on min ||theta||^2 s.t. q >= 1, ||theta - theta~|| <= r, followed by
               an exact restoration of the active margins.
* "local":     VSS Thm 4.3: a KKT point of a depth-2 network without sharing at which every pre-activation
               w_j . x_i is non-zero is a local optimum.
* "kkt_only":  KKT holds and nothing above was certified either way.

Each layer also gets a verdict for VSS Problem (4), the max-margin problem in that layer with the other fixed
(`LayerReport`): convex in v (an SVM on the hidden features), and in W on each activation pattern, hence decided
exactly by least-distance programs over the patterns around theta~ (local) or over all combinations of cells of X
(global). A KKT point of (P) can be optimal for each layer and still not a local optimum of (P) (VSS Thm 3.2's
limit: improving it needs both layers), and need not be optimal for a layer (Thm 5.3; Lemma C.6: local, not global)."""
from .certificates import Certificate
from .kkt import kkt_residual
from .layers import LayerReport
from .verdict import VERDICTS, Report, analyze

__all__ = ["VERDICTS", "Certificate", "LayerReport", "Report", "analyze", "kkt_residual"]
