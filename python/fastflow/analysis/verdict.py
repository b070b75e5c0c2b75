"""`analyze`: the steps in order, and the Report with its verdict."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._validate import positive_int, real_scalar
from .certificates import Certificate, _search
from .kkt import _kkt_fit
from .layers import _layer_report
from .model import _EXACT_TOL, _normalise, _setup
from .optimum import _dual_value, _global
from .polish import _polish

VERDICTS = ("global", "local", "not_local", "kkt_only", "not_kkt")

@dataclass(frozen=True)
class Report:
    """The analysis of one (limit) point. See the module docstring for the verdicts and their certificates.

    theta_tilde: the analysed point, margin exactly 1 — the polished KKT point when polishing succeeded, else
    theta_raw = theta (min_i q_i)^(-1/2). norm_sq = ||theta_tilde||^2; kkt_residual = min ||theta~ - sum_i
    lambda_i g_i|| / ||theta~|| over lambda >= 0 on the support and g_i in the Clarke subdifferential of q_i;
    multipliers = that lambda (zero off the support); support = indices with q_i = 1 (within 1e-9).
    certificate: for "not_local" only (else None). global_value = ||theta*||^2 as computed (the convex program's
    primal value for ReLU, the SVM for linear nets; None when not computed); global_lower = the certified lower bound
    the "global" verdict uses; gap = norm_sq / global_value - 1. pattern: (n, width) sign of w_j . x_i at theta~ in
    {-1, 0, 1} (0 = zero within 1e-9 relative, or a zero neuron). dual_value = max_{||u||<=1} |lambda^T (Xu)_+|
    with lambda_i = y_i multipliers_i (ReLU; <= 1 is WP Thm 3's certificate). local_condition: VSS Thm 4.3's
    hypothesis holds at theta~. polish_distance = ||theta~ - theta_raw||. per_layer: (LayerReport of layer 1,
    LayerReport of layer 2), VSS Problem (4) for each layer of theta~ with the other fixed.
    """

    verdict: str
    theta_tilde: np.ndarray
    norm_sq: float
    kkt_residual: float
    multipliers: np.ndarray
    support: np.ndarray
    certificate: Certificate | None
    global_value: float | None
    gap: float | None
    pattern: np.ndarray
    per_layer: tuple
    evidence: str
    theta_raw: np.ndarray = field(repr=False)
    raw_norm_sq: float = field(repr=False)
    raw_kkt_residual: float = field(repr=False)
    polished: bool = field(repr=False)
    polish_distance: float = field(repr=False)
    margins: np.ndarray = field(repr=False)
    local_condition: bool = field(repr=False)
    dual_value: float | None = field(repr=False)
    global_lower: float | None = field(repr=False)
    eps: float = field(repr=False)

    @property
    def normalized_margin(self):
        """gamma = 1 / ||theta~||^2 (depth 2, margin 1)."""
        return 1.0 / self.norm_sq

    def __str__(self):
        return f"verdict: {self.verdict}\n{self.evidence}"



def _fmt(x):
    return np.array2string(np.asarray(x), precision=6, suppress_small=True, max_line_width=200)


def analyze(net, data, theta, *, eps=1e-2, polish=True, rng=0, kkt_tol=1e-8, global_rtol=1e-6, global_opt=True,
            n_random=6, polish_radius=0.5):
    """Classify theta (typically `traj.theta` of a long flow) as a point of the max-margin problem (P).

    eps: radius of the non-local certificates (in the normalised scale, margin 1). polish: solve the KKT system of
    the late point's pattern to machine precision first (recommended: the direction converges like 1/log t).
    kkt_tol: largest relative KKT residual accepted as KKT (also per layer). global_rtol: ||theta~||^2 <= (1 +
    global_rtol) x the optimum counts as global (also per layer). global_opt: compute the optimum (SVM for linear
    nets; `fastflow.convex` for ReLU, which enumerates every cell of X's arrangement) and, for ReLU, the first
    layer's per-layer optimum (at most 4096 combinations of cells, one per neuron with v_j != 0). n_random: random
    starts of the local search (after the papers' constructions). rng: seed or numpy Generator of those starts.
    polish_radius: a polished point further than this times ||theta_raw|| from theta_raw is not used.

    Returns a Report; raises ValueError outside the scope (non-homogeneous, not a fully connected two-layer net,
    d_out != 1, labels not +-1) and when some margin y_i Phi(theta; x_i) is <= 0 (theta cannot be normalised).
    """
    eps = real_scalar("eps", eps, low=0.0, low_open=True)
    kkt_tol = real_scalar("kkt_tol", kkt_tol, low=0.0)
    global_rtol = real_scalar("global_rtol", global_rtol, low=0.0)
    polish_radius = real_scalar("polish_radius", polish_radius, low=0.0)
    n_random = positive_int("n_random", n_random, minimum=0)
    m, theta = _setup(net, data, theta)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    lines = []

    theta_raw = _normalise(m, theta)
    raw_res, raw_lam, raw_support, raw_exact = _kkt_fit(m, theta_raw)
    point, polished, polish_dist = theta_raw, False, 0.0
    if polish:
        best = _polish(m, theta_raw, polish_radius)
        if best is not None:
            point, polish_dist, how = best
            polished = True
            lines.append(f"polished: KKT point of the pattern read with {how}, at distance "
                         f"{polish_dist:.3g} from theta_raw (||theta_raw||^2 = {theta_raw @ theta_raw:.10g}, raw KKT "
                         f"residual {raw_res:.3g})")
        else:
            lines.append(f"polishing failed for every pattern read off theta (raw KKT residual {raw_res:.3g}); "
                         f"analysing the raw normalised point")
    if polished:
        res, lam, support, exact = _kkt_fit(m, point)
    else:
        res, lam, support, exact = raw_res, raw_lam, raw_support, raw_exact
    norm_sq = float(point @ point)
    q = m.margins(point)
    cos = m.cosines(point)
    pattern = np.sign(m.pre(point)).astype(np.int8)
    pattern[np.abs(cos) <= _EXACT_TOL] = 0
    norms = m.neuron_norms(point)
    lines.append(f"||theta~||^2 = {norm_sq:.12g} (normalized margin {1 / norm_sq:.10g}); support {support.tolist()}; "
                 f"multipliers {_fmt(lam[support])}; KKT residual {res:.3g}"
                 + ("" if exact else " (upper bound: a sample touches many surfaces)"))
    zero_neurons = np.flatnonzero(norms <= 1e-9 * np.sqrt(norm_sq))
    if len(zero_neurons):
        lines.append(f"zero neurons: {zero_neurons.tolist()}")

    gv, lower, gnote = _global(m, global_opt)
    gap = None if gv is None else norm_sq / gv - 1.0
    lines.append(gnote if gv is None else f"{gnote}: {gv:.10g}; gap ||theta~||^2/||theta*||^2 - 1 = {gap:.3g}")
    is_kkt = res <= kkt_tol
    dual = _dual_value(m, lam) if (m.relu and global_opt) else None
    if dual is not None:
        # weak duality: for every feasible theta, 1/2 ||theta||^2 >= sum_j |v_j| ||w_j|| >= sum_i lam_i / max(1, dual)
        dual_lower = 2.0 * float(np.sum(lam)) / max(1.0, dual)
        lines.append(f"dual value of the multipliers max_(||u||<=1) |lambda^T (Xu)_+| = {dual:.6g} "
                     f"({'<= 1: dual feasible' if dual <= 1 + 1e-9 else '> 1: not dual feasible'}, convex-geometry "
                     f"paper Thm 3); certified lower bound ||theta*||^2 >= {dual_lower:.12g}")
        lower = dual_lower if lower is None else max(lower, dual_lower)
    local_condition = bool(m.relu and is_kkt and not len(zero_neurons)
                           and np.all(np.abs(cos) > _EXACT_TOL) and np.all(m.xnorm > 0))

    is_global = lower is not None and norm_sq <= lower * (1.0 + global_rtol)
    cert = None
    if is_kkt and not is_global:
        cert, single = _search(m, point, lam, eps, res, rng, n_random)
        if cert is None and single is not None:
            lines.append(f"a better feasible point exists at distance {single.distance:.3g} <= eps "
                         f"(gain {single.gain:.3g}, {single.method}) but not at eps/4 and eps/16: not a proof of "
                         f"non-locality")

    if is_global:
        verdict = "global"
        lines.append(f"global: theta~ is feasible and ||theta~||^2 = {norm_sq:.12g} is within {global_rtol:g} "
                     f"(relative) of the certified lower bound {lower:.12g} on the optimum")
    elif not is_kkt:
        verdict = "not_kkt"
        lines.append(f"not_kkt: KKT residual {res:.3g} > {kkt_tol:g}"
                     + ("" if polish else " (polish=False: a late trajectory point is KKT only up to O(1/log t))"))
    elif cert is not None:
        verdict = "not_local"
        lines.append(f"not_local: feasible theta' with ||theta' - theta~|| = {cert.distance:.3g} <= {eps:g} and "
                     f"||theta'||^2 = {cert.norm_sq:.12g} < {norm_sq:.12g} ({cert.method}); same construction "
                     f"certified at radii " + ", ".join(f"{c.radius:.3g} (gain {c.gain:.3g})" for c in cert.family))
        if local_condition:
            lines.append("WARNING: VSS Thm 4.3's condition also holds — inconsistent; please report this case")
    elif local_condition:
        verdict = "local"
        lines.append("local: KKT point with every pre-activation w_j.x_i non-zero (min |cos| = "
                     f"{np.min(np.abs(cos)):.3g}) — VSS Thm 4.3")
    else:
        verdict = "kkt_only"
        lines.append("kkt_only: KKT point, no certificate either way")
    if verdict != "not_local":
        cert = None
    per_layer = tuple(_layer_report(m, point, layer, eps, kkt_tol, global_rtol, global_opt) for layer in (1, 2))
    lines.append("per-layer max-margin (VSS Problem (4)), each layer with the other fixed:")
    lines += [f"  {lr.evidence}" for lr in per_layer]

    return Report(verdict=verdict, theta_tilde=point, norm_sq=norm_sq, kkt_residual=float(res), multipliers=lam,
                  support=support, certificate=cert, global_value=gv, gap=gap, pattern=pattern, per_layer=per_layer,
                  evidence="\n".join(lines), theta_raw=theta_raw, raw_norm_sq=float(theta_raw @ theta_raw),
                  raw_kkt_residual=float(raw_res), polished=polished, polish_distance=float(polish_dist), margins=q,
                  local_condition=local_condition, dual_value=dual, global_lower=lower, eps=eps)
