"""`analyze`: the steps in order, and the Report with its verdict."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import wraps

import numpy as np
from threadpoolctl import threadpool_limits

from .._validate import positive_int, real_scalar
from .certificates import Certificate, _search
from .kkt import _kkt_fit
from .layers import _layer_report
from .local import _PD_TOL, _second_order, _thm43
from .model import _EXACT_TOL, _POLISH_BUDGET, _SEARCH_BUDGET, _Budget, _normalise, _setup
from .optimum import _dual_value, _global
from .optimum_classn import _global_classn
from .polish import _polish
from .polish_classn import _polish_classn

# "undecided": a budget of analyze ran out (polishing's, the certificate search's), or analyze_limit's horizons did
# not agree within its budget
VERDICTS = ("global", "local", "not_local", "kkt_only", "not_kkt", "undecided")

@dataclass(frozen=True)
class Report:
    """The analysis of one (limit) point. See the module docstring for the verdicts and their certificates.

    theta_tilde: the analysed point, margin exactly 1 — the polished KKT point when polishing succeeded, else
    theta_raw = theta (min_i q_i)^(-1/L). norm_sq = ||theta_tilde||^2; kkt_residual = min ||theta~ - sum_i
    lambda_i g_i|| / ||theta~|| over lambda >= 0 on the support and g_i in the Clarke subdifferential of q_i;
    multipliers = that lambda (zero off the support); support = indices with q_i = 1 (within 1e-9).
    certificate: for "not_local" only (else None). global_value = ||theta*||^2 where computed exactly (two-layer:
    the convex program's primal value for ReLU, the SVM for linear nets; fully connected linear nets: the SVM
    bound; else None); global_lower = the certified lower bound the "global" verdict uses; gap = norm_sq /
    global_value - 1. pattern: (n, hidden units) sign of the pre-activations at theta~ in {-1, 0, 1} (0 = zero
    within 1e-9 relative, or a zero neuron; no columns for linear class-N nets). dual_value = max_{||u||<=1}
    |lambda^T (Xu)_+| with lambda_i = y_i multipliers_i (two-layer ReLU; <= 1 is WP Thm 3's certificate).
    local_condition: the sufficient condition behind "local" holds (Thm 4.3, or the second-order check).
    second_order: the smallest eigenvalue of the reduced Hessian of the Lagrangian (class-N nets other than the
    fully connected two-layer one, when checked). polish_distance = ||theta~ - theta_raw||. per_layer: one
    LayerReport per layer (margin paper, Problem (4), that layer with the others fixed). degree: L, the depth.
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
    degree: int = field(default=2, repr=False)
    second_order: float | None = field(default=None, repr=False)

    @property
    def normalized_margin(self):
        """gamma = 1 / ||theta~||^L (margin 1, L the depth)."""
        return self.norm_sq ** (-self.degree / 2)

    def __str__(self):
        return f"verdict: {self.verdict}\n{self.evidence}"


def _fmt(x):
    return np.array2string(np.asarray(x), precision=6, suppress_small=True, max_line_width=200)


def _global_line(note, value, point):
    return note if value is None else f"{note}: {value:.10g}; gap ||theta~||^2/||theta*||^2 - 1 = " \
        f"{point @ point / value - 1.0:.3g}"


def _read_two_layer(m, point, lam, support, is_kkt, global_opt, lines):
    """Pattern, global value and bound, dual value, Thm 4.3 of the fully connected two-layer net."""
    cos = m.cosines(point)
    pattern = np.sign(m.pre(point)).astype(np.int8)
    pattern[np.abs(cos) <= _EXACT_TOL] = 0
    zero_neurons = np.flatnonzero(m.neuron_norms(point) <= 1e-9 * np.linalg.norm(point))
    if len(zero_neurons):
        lines.append(f"zero neurons: {zero_neurons.tolist()}")
    gv, lower, gnote = _global(m, global_opt)
    lines.append(_global_line(gnote, gv, point))
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
    text = (f"KKT point with every pre-activation w_j.x_i non-zero (min |cos| = {np.min(np.abs(cos)):.3g}) — margin "
            f"paper, Thm 4.3")
    return pattern, gv, lower, dual, local_condition, text, None


def _read_classn(m, point, lam, support, is_kkt, global_opt, lines):
    """The same for any other class-N net: global bounds where a convex program gives one, Thm 4.3 where proven
    (depth 2, no sharing), else the second-order check."""
    pattern = np.sign(m.pre(point)).astype(np.int8)
    if m.relu:
        pattern[m.zero_ratio(point) <= _EXACT_TOL] = 0
    gv, lower, gnote = _global_classn(m, global_opt, lam)
    lines.append(_global_line(gnote, gv, point))
    if _thm43(m, point, is_kkt):
        text = "KKT point of a depth-2 ReLU net without sharing with every pre-activation non-zero — margin paper, " \
            "Thm 4.3"
        return pattern, gv, lower, None, True, text, None
    curvature, note, _ = _second_order(m, point, lam, support) if is_kkt else (None, "", [])
    if note:
        lines.append(note)
    local_condition = curvature is not None and curvature > _PD_TOL
    return pattern, gv, lower, None, local_condition, f"second-order sufficient condition ({note})", curvature


def _one_blas_thread(f):
    """Run f with BLAS on one thread: analyze's matrices are at most a few hundred wide, where a threaded OpenBLAS
    spins rather than works (a 150 x 150 solve took 14 ms of CPU with two threads on a loaded 2-core machine, 0.2 ms
    with one)."""
    @wraps(f)
    def single(*args, **kwargs):
        with threadpool_limits(1, user_api="blas"):
            return f(*args, **kwargs)
    return single


@_one_blas_thread
def analyze(net, data, theta, *, eps=1e-2, polish=True, rng=0, kkt_tol=1e-8, global_rtol=1e-6, global_opt=True,
            n_random=6, polish_radius=0.5, polish_budget=_POLISH_BUDGET, search_budget=_SEARCH_BUDGET):
    """Classify theta (typically `traj.theta` of a long flow) as a point of the max-margin problem (P).

    eps: radius of the non-local certificates (in the normalised scale, margin 1). polish: solve the KKT system of
    the late point's pattern to machine precision first (recommended: the direction converges like 1/log t).
    kkt_tol: largest relative KKT residual accepted as KKT (also per layer). global_rtol: ||theta~||^2 <= (1 +
    global_rtol) x the optimum counts as global (also per layer). global_opt: compute the optimum or a certified
    lower bound (two-layer: the SVM for linear nets, `fastflow.convex` for ReLU, which enumerates every cell of X's
    arrangement; linear class-N nets: the SVM bound) and the per-layer optima over all activation patterns (at most
    4096). n_random: random starts of the local search (after the papers' constructions). rng: seed or numpy
    Generator of those starts. polish_radius: a polished point further than this times ||theta_raw|| from
    theta_raw is not used (except the rank-one point of a fully connected linear
    net, where the limit lies by margin paper Thm 3.1). polish_budget: the Jacobian entries of polishing's
    Levenberg-Marquardt steps (a step costs about that), over the patterns in the order of the thresholds; when it
    runs out, the verdict is "undecided" (the closest KKT point so far is theta_tilde, with the per-layer reports,
    and the evidence says from which thresholds on no pattern was tried). search_budget: SLSQP
    iterations of the certificate search (each start runs at most 100 and stops at its first certified iterate); a
    KKT point that neither a certificate nor a sufficient condition settles before the budget runs out is
    "undecided", the starts not finished listed in the evidence.

    Returns a Report; raises ValueError outside the scope (bias or skip connection: not homogeneous; activation
    other than ReLU or linear; d_out != 1; labels not +-1) and when some margin y_i Phi(theta; x_i) is <= 0 (theta
    cannot be normalised). For a verdict of the limit rather than of this point, see `analyze_limit`.
    """
    eps = real_scalar("eps", eps, low=0.0, low_open=True)
    kkt_tol = real_scalar("kkt_tol", kkt_tol, low=0.0)
    global_rtol = real_scalar("global_rtol", global_rtol, low=0.0)
    polish_radius = real_scalar("polish_radius", polish_radius, low=0.0)
    n_random = positive_int("n_random", n_random, minimum=0)
    polish_budget = positive_int("polish_budget", polish_budget)
    search_budget = positive_int("search_budget", search_budget)
    m, theta = _setup(net, data, theta)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    lines = []

    theta_raw = _normalise(m, theta)
    raw_res, raw_lam, raw_support, raw_exact = _kkt_fit(m, theta_raw)
    point, polished, polish_dist, polish_cut = theta_raw, False, 0.0, None
    if polish:
        best, polish_cut = (_polish_classn if m.general else _polish)(m, theta_raw, polish_radius,
                                                                     _Budget(polish_budget))
        if polish_cut is not None:
            lines.append(f"polishing spent its budget of {polish_budget} Jacobian entries at the thresholds "
                         f"{polish_cut[0]:g} (support, zero pre-activations) and {polish_cut[1]:g} (zero units): the "
                         f"patterns read from there on were not tried")
        if best is not None:
            point, polish_dist, how = best
            polished = True
            lines.append(f"polished: KKT point of the pattern read with {how}, at distance "
                         f"{polish_dist:.3g} from theta_raw (||theta_raw||^2 = {theta_raw @ theta_raw:.10g}, raw KKT "
                         f"residual {raw_res:.3g})")
        else:
            lines.append(f"polishing failed for every pattern {'tried' if polish_cut else 'read off theta'} (raw KKT "
                         f"residual {raw_res:.3g}); analysing the raw normalised point")
    if polished:
        res, lam, support, exact = _kkt_fit(m, point)
    else:
        res, lam, support, exact = raw_res, raw_lam, raw_support, raw_exact
    norm_sq = float(point @ point)
    q = m.margins(point)
    lines.append(f"||theta~||^2 = {norm_sq:.12g} (normalized margin {norm_sq ** (-m.degree / 2):.10g}); support "
                 f"{support.tolist()}; multipliers {_fmt(lam[support])}; KKT residual {res:.3g}"
                 + ("" if exact else " (upper bound: a sample touches many surfaces)"))
    is_kkt = res <= kkt_tol
    read = _read_classn if m.general else _read_two_layer
    pattern, gv, lower, dual, local_condition, local_text, curvature = read(m, point, lam, support, is_kkt,
                                                                            global_opt, lines)
    gap = None if gv is None else norm_sq / gv - 1.0

    is_global = lower is not None and norm_sq <= lower * (1.0 + global_rtol)
    cert, unfinished = None, []
    if is_kkt and not is_global and polish_cut is None:   # a cut polish decides the verdict (below)
        cert, single, unfinished = _search(m, point, lam, eps, res, rng, n_random, _Budget(search_budget))
        if cert is None and single is not None:
            lines.append(f"a better feasible point exists at distance {single.distance:.3g} <= eps "
                         f"(gain {single.gain:.3g}, {single.method}) but not at eps/4 and eps/16: not a proof of "
                         f"non-locality")

    if polish_cut is not None:   # theta~ may not be the limit's KKT point: no verdict about it is one of the limit
        verdict = "undecided"
        lines.append("undecided: polishing stopped before every pattern was tried, so the KKT point closest to "
                     "theta_raw is not known" + ("" if polished else f" (theta_raw's KKT residual {res:.3g})"))
    elif is_global:
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
            lines.append("WARNING: a sufficient condition for a local optimum also holds — inconsistent; please report "
                         "this case")
    elif local_condition:
        verdict = "local"
        lines.append(f"local: {local_text}")
    elif unfinished:
        verdict = "undecided"
        lines.append(f"undecided: KKT point; the certificate search spent its budget of {search_budget} SLSQP "
                     f"iterations with no certificate; starts not finished: " + "; ".join(unfinished))
    else:
        verdict = "kkt_only"
        lines.append("kkt_only: KKT point, no certificate either way")
    if verdict != "not_local":
        cert = None
    per_layer = tuple(_layer_report(m, point, layer, eps, kkt_tol, global_rtol, global_opt)
                      for layer in range(1, m.degree + 1))
    lines.append("per-layer max-margin (margin paper, Problem (4)), each layer with the others fixed:")
    lines += [f"  {lr.evidence}" for lr in per_layer]

    return Report(verdict=verdict, theta_tilde=point, norm_sq=norm_sq, kkt_residual=float(res), multipliers=lam,
                  support=support, certificate=cert, global_value=gv, gap=gap, pattern=pattern, per_layer=per_layer,
                  evidence="\n".join(lines), theta_raw=theta_raw, raw_norm_sq=float(theta_raw @ theta_raw),
                  raw_kkt_residual=float(raw_res), polished=polished, polish_distance=float(polish_dist), margins=q,
                  local_condition=local_condition, dual_value=dual, global_lower=lower, eps=eps, degree=m.degree,
                  second_order=curvature)
