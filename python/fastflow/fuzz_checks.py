"""The checks of the fuzz target (fastflow.fuzz), each independent of the integrator: a trajectory is judged from
its own dense output only (docs/mathematics.md §2-§5).

- the hidden pre-activations are re-evaluated in NumPy on a fine grid of dense samples, and every sign change of
  every (sample, neuron) pair between two grid points must be matched by an event of that pair in between (no
  missed crossing; a sign that returns inside one integrator step is caught whenever a grid point falls in the
  excursion); between its events a pair must keep the sign of its mode (active >= 0, inactive <= 0, sliding = 0);
- a second run samples the dense output exactly at the event times: the pair of every event must be on its
  surface there (no spurious event), and sampling must not change the trajectory;
- no event is recorded twice, and each pair's events follow its mode automaton (activate only when inactive, ...);
- every branch is an unstable branching point, re-evaluated in NumPy (two-layer nets): a slide entered with both
  one-sided fields pointing away, a sliding surface turning repulsive (D_ij = G_i . v_j at 0), or a neuron pinned
  at w_j = 0 (the inputs of its samples on their surfaces span the input space); on deeper nets the same, from the
  model's one-sided Jacobians where the branch's switch is alone on its surface in its sample;
- every slide_end alone at its time is a real exit: the pair's minimal-norm multiplier, recomputed in NumPy from
  the one-sided fields at the event, is at 0 or 1 (two-layer nets);
- two-layer conservation law ||w_j||^2 - ||v_j||^2 constant per neuron, loss non-increasing along the samples,
  finite values, and a status that makes sense for the problem (converged, t_max, stalled; a Zeno stop, max_steps
  or error on these small short problems is a finding; "stalled" only with L >= l(0), "t_max" exactly at the
  horizon).

tests/test_events.py, tests/test_adversarial.py and tests/test_fuzz.py use them directly.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .flow import flow
from .networks import fully_connected, two_layer

SENSIBLE_STATUSES = ("converged", "t_max", "stalled")
VIOLATION_KINDS = ("missed_crossing", "wrong_side", "off_surface_while_sliding", "spurious_event", "duplicate_event",
                   "inconsistent_kind", "unexplained_branch", "t_eval_perturbs", "unconfirmed_exit", "conservation",
                   "loss_increase", "nonfinite", "status", "timeout", "exception")
EPS = np.finfo(float).eps

# Tolerances, in units of what the integrator promises. Dense output between two accepted steps is accurate to
# about rtol * ||theta|| + atol, so a sliding pre-activation (held at 0 at step ends) may show that much at a grid
# point; a sign is "significant" beyond H_BAND times that.
H_BAND = 1e3
CONSERVATION_TOL = 1e4    # relative drift of ||w_j||^2 - ||v_j||^2 over a short run, in units of rtol
LOSS_TOL = 10.0           # relative increase of the loss between two dense samples (interpolation), in units of rtol
SAME_T = 1e-12            # relative tolerance when matching event times with grid intervals
LEAVE_LEAD = 64.0         # branch="leave" leaves a surface turning repulsive once D is this many noise levels past 0
DENSE_ERROR = 16.0        # ... its noise: a dense-output weight's error, in units of atol + rtol max|theta| (branches.hpp)
EXIT_BAND = 1e-6          # a slide ends where its multiplier reaches 0 or 1: how far inside [0, 1] it may be then


@dataclass
class Problem:
    """A ReLU problem: net, data, initial point, loss, horizon and the flow options."""

    net: object
    X: np.ndarray
    y: np.ndarray
    theta0: np.ndarray
    loss: str
    t_max: float
    rtol: float = 1e-10
    atol: float = 1e-12
    options: dict = field(default_factory=dict)

    def run(self, t_eval=None, **extra):
        """ff.flow on this problem; `extra` overrides any option (t_max, max_steps, ...)."""
        kwargs = dict(loss=self.loss, t_max=self.t_max, rtol=self.rtol, atol=self.atol, t_eval=t_eval)
        return flow(self.net, (self.X, self.y), self.theta0, **{**kwargs, **self.options, **extra})


@dataclass(frozen=True)
class Violation:
    kind: str
    detail: str

    def __str__(self):
        return f"{self.kind}: {self.detail}"


# ----------------------------------------------------------------------------------------------------------------
# Random problems


def random_problem(rng, n=(2, 8), d=(2, 4), width=(2, 5), losses=("exponential", "logistic", "square"),
                   t_max=None, scale=None):
    """A random small two-layer ReLU problem (n, d, width drawn uniformly from the inclusive ranges), gaussian
    inputs, labels +-1 (or 1- or 2-D real targets for the square loss), a gaussian init of random scale (0.03 to 3
    unless `scale` is given) and a short horizon (classification: t up to 1e3, square: up to 30; or `t_max`)."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    n, d, width = (int(rng.integers(lo, hi + 1)) for lo, hi in (n, d, width))
    loss = str(rng.choice(losses))
    X = rng.normal(size=(n, d))
    if loss == "square":
        d_out = int(rng.integers(1, 3))
        y = rng.normal(size=(n, d_out))
        horizon = float(np.exp(rng.uniform(0.0, np.log(30.0))))
    else:
        d_out = 1
        y = np.where(rng.random(n) < 0.5, -1.0, 1.0)
        horizon = float(np.exp(rng.uniform(0.0, np.log(1e3))))
    net = two_layer(d, width, d_out=d_out)
    std = 10.0 ** rng.uniform(-1.5, 0.5)
    theta0 = rng.normal(0.0, std if scale is None else scale, net.n_params)
    return Problem(net, X, y, theta0, loss, horizon if t_max is None else float(t_max))


def random_deep_problem(rng, depth=(3, 4), width=(2, 8), n=(3, 10), d=(2, 4), losses=("exponential", "logistic")):
    """A random small deep ReLU problem: depth - 1 hidden layers of one width (depth, width, n, d drawn uniformly
    from the inclusive ranges), gaussian inputs, labels +-1, a gaussian init of std 0.5, 1 or 1.5 and a horizon up
    to t = 1e3."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    depth, width, n, d = (int(rng.integers(lo, hi + 1)) for lo, hi in (depth, width, n, d))
    loss = str(rng.choice(losses))
    net = fully_connected(d, [width] * (depth - 1))
    X = rng.normal(size=(n, d))
    y = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    theta0 = rng.normal(0.0, float(rng.choice([0.5, 1.0, 1.5])), net.n_params)
    return Problem(net, X, y, theta0, loss, float(np.exp(rng.uniform(0.0, np.log(1e3)))))


def time_grid(loss, t_max, n_grid=400):
    """n_grid dense-sample times on [0, t_max]: uniform in log(1 + t) for the classification losses (the
    integrator's own time), uniform in t for the square loss."""
    if loss == "square":
        return np.linspace(0.0, t_max, n_grid)
    grid = np.expm1(np.linspace(0.0, np.log1p(t_max), n_grid))
    grid[-1] = t_max
    return grid


# ----------------------------------------------------------------------------------------------------------------
# Independent re-evaluation


def _two_layer_blocks(net, thetas):
    """(W1s (m, width, d), W2s (m, d_out, width)) of the rows of thetas, for a plain two-layer network."""
    (width, d), (d_out, _) = net.layer_shapes
    thetas = np.atleast_2d(thetas)
    k = width * d
    return thetas[:, :k].reshape(-1, width, d), thetas[:, k:k + d_out * width].reshape(-1, d_out, width)


def preactivations_many(net, thetas, X):
    """Every hidden pre-activation (m, n, units) at the rows of thetas, computed in NumPy (two-layer) or through
    net.preactivations (other architectures)."""
    thetas = np.atleast_2d(thetas)
    if net.depth == 2 and net.is_homogeneous and not net.has_sharing and net.maps[0].min() > 0:
        W1s = _two_layer_blocks(net, thetas)[0]
        return np.einsum("id,mjd->mij", X, W1s)
    return np.stack([np.concatenate(net.preactivations(th, X), axis=1) for th in thetas])


def h_bands(net, thetas, X, rtol, atol):
    """What a pre-activation may show by integration error alone at each dense sample (m, n, units):
    H_BAND |x_i| (rtol ||theta|| + atol) + 64 eps |x_i| |w_j| (rounding)."""
    thetas = np.atleast_2d(thetas)
    xn = np.linalg.norm(X, axis=1)
    tn = np.linalg.norm(thetas, axis=1)
    # a unit of hidden layer l is a product of l weight layers: its integration error grows like ||theta||^(l-1)
    layer_of_unit = np.repeat(np.arange(len(net.hidden_widths)), net.hidden_widths)
    growth = np.maximum(tn, 1.0)[:, None] ** layer_of_unit[None, :]  # (m, units)
    band = H_BAND * xn[None, :, None] * (rtol * tn + atol)[:, None, None] * growth[:, None, :]
    if net.depth == 2 and not net.has_sharing and net.is_homogeneous and net.maps[0].min() > 0:
        wn = np.linalg.norm(_two_layer_blocks(net, thetas)[0], axis=2)  # (m, width)
        band = band + 64 * EPS * xn[None, :, None] * wn[:, None, :]
    return band + 1e-300


def balance(net, thetas):
    """Per hidden neuron of a two-layer network: ||w_j||^2 - ||v_j||^2 and ||w_j||^2 + ||v_j||^2, each (m, width)."""
    W1s, W2s = _two_layer_blocks(net, thetas)
    a, b = np.sum(W1s**2, axis=2), np.sum(W2s**2, axis=1)
    return a - b, a + b


def ell0(loss):
    return {"exponential": 1.0, "logistic": np.log(2.0)}[loss]


# ----------------------------------------------------------------------------------------------------------------
# Checks; each returns a list of Violation


def _pair_events(events):
    """{(sample, layer, neuron): [(t, kind), ...]} in time order (branch events left out)."""
    out = {}
    for e in events:
        if str(e["kind"]) == "branch":
            continue
        out.setdefault((int(e["sample"]), int(e["layer"]), int(e["neuron"])), []).append((float(e["t"]),
                                                                                          str(e["kind"])))
    return out


def _units(net):
    """(layer, neuron) of every hidden unit, in the order of the last axis of preactivations_many."""
    return [(layer, r) for layer, width in enumerate(net.hidden_widths) for r in range(width)]


def _significant_signs(net, thetas, X, rtol, atol):
    """(pre-activations, their bands, their signs beyond the bands: +-1 or 0), each (m, n, units)."""
    H = preactivations_many(net, thetas, X)
    B = h_bands(net, thetas, X, rtol, atol)
    return H, B, np.where(H > B, 1, np.where(H < -B, -1, 0))


def dead_inputs(net, S):
    """(m, n, units) of the significant signs S: True where the unit's layer input is zero to rounding, every unit
    of the layer below off or on its surface (a dead signal path, no bias). Such a pre-activation is 0, and when
    the path revives its side is set without an event of its own."""
    dead = np.zeros(S.shape, dtype=bool)
    if net.bias:
        return dead
    ends = np.cumsum(net.hidden_widths)
    for below, (lo, hi) in enumerate(zip(ends[:-1], ends[1:])):
        start = ends[below] - net.hidden_widths[below]
        dead[:, :, lo:hi] = np.all(S[:, :, start:lo] <= 0, axis=2)[:, :, None]
    return dead


def check_crossings(net, X, traj, rtol, atol, at_events=None):
    """(a) Every significant sign change of every pre-activation between two consecutive (finite) dense samples
    must be matched by an event of that pair inside the interval; and between its events each pair must keep its
    mode's sign (active h >= -band, inactive h <= band, sliding |h| <= band). A pair on a dead signal path
    (dead_inputs) may change sides without an event: its side is unknown after the path revives. The path may be
    dead for an instant only, at an event (units of the layer below reaching 0 together): at_events, the run
    sampled at its event times, shows those instants."""
    ok = np.all(np.isfinite(traj.theta_at), axis=1)
    t, thetas = traj.t_eval[ok], traj.theta_at[ok]
    if len(t) < 2 or net.hidden_widths == [] or net.activation != "relu":
        return []
    H, B, S = _significant_signs(net, thetas, X, rtol, atol)
    dead = dead_inputs(net, S)
    dead_t = np.empty(0)
    dead_at_events = np.zeros((0,) + S.shape[1:], dtype=bool)
    if at_events is not None and len(net.hidden_widths) > 1:  # one hidden layer: no dead paths
        fine = np.all(np.isfinite(at_events.theta_at), axis=1)
        dead_t = at_events.t_eval[fine]
        if dead_t.size:
            dead_at_events = dead_inputs(net, _significant_signs(net, at_events.theta_at[fine], X, rtol, atol)[2])
    by_pair = _pair_events(traj.events)
    units_of = _units(net)
    out = []
    n, units = H.shape[1:]
    for i in range(n):
        for j in range(units):
            evs = by_pair.get((i, *units_of[j]), [])
            ev_t = np.array([e[0] for e in evs])
            sig = np.flatnonzero(S[:, i, j])
            # (a) consecutive significant samples of opposite signs need an event of the pair in between
            flips = sig[:-1][S[sig[:-1], i, j] != S[sig[1:], i, j]]
            nxt = sig[1:][S[sig[:-1], i, j] != S[sig[1:], i, j]]
            for a, b in zip(flips, nxt):
                lo, hi = t[a], t[b]
                if dead[a:b + 1, i, j].any() or np.any(dead_at_events[(dead_t >= lo) & (dead_t <= hi), i, j]):
                    continue
                if not np.any((ev_t >= lo - SAME_T * max(1.0, lo)) & (ev_t <= hi + SAME_T * max(1.0, hi))):
                    out.append(Violation("missed_crossing",
                                         f"pair (sample {i}, neuron {j}): h = {H[a, i, j]:.3e} at t = {lo:.17g}, "
                                         f"{H[b, i, j]:.3e} at t = {hi:.17g}, no event of the pair in between"))
            # between consecutive events the mode is fixed; None = an unknown side (at the start, or after a
            # slide_end): the first significant sign fixes it
            bounds = [0.0] + [e[0] for e in evs] + [np.inf]
            kinds = [None] + [e[1] for e in evs]
            for k in range(len(bounds) - 1):
                kind = kinds[k]
                if kind == "activate":
                    mode = 1
                elif kind == "deactivate":
                    mode = -1
                elif kind == "slide_start":
                    mode = 0
                elif kind == "slide_end" or kind is None:
                    mode = None
                lo, hi = bounds[k], bounds[k + 1]
                after = t > lo + SAME_T * max(1.0, lo) if kind is not None else t >= 0.0
                inside = np.flatnonzero(after & (t < hi - SAME_T * max(1.0, hi)))
                # after a dead stretch the side is unknown again: only what follows the last one is checked
                was_dead = np.flatnonzero(dead[inside, i, j])
                if was_dead.size:
                    inside, mode = inside[was_dead[-1] + 1:], None
                dead_inside = dead_t[dead_at_events[:, i, j] & (dead_t >= lo) & (dead_t < hi)]
                if dead_inside.size:
                    inside, mode = inside[t[inside] > dead_inside[-1]], None
                if inside.size == 0:
                    continue
                s = S[inside, i, j]
                if mode is None:
                    nz = s[s != 0]
                    if nz.size == 0:
                        continue
                    mode = int(nz[0])
                if mode == 0:
                    bad = inside[s != 0]
                    if bad.size:
                        m = bad[0]
                        out.append(Violation("off_surface_while_sliding",
                                             f"pair (sample {i}, neuron {j}) sliding since t = {lo:.17g} has "
                                             f"h = {H[m, i, j]:.3e} (band {B[m, i, j]:.1e}) at t = {t[m]:.17g}"))
                else:
                    bad = inside[s == -mode]
                    if bad.size:
                        m = bad[0]
                        out.append(Violation("wrong_side",
                                             f"pair (sample {i}, neuron {j}) {'active' if mode > 0 else 'inactive'} "
                                             f"on ({lo:.17g}, {hi:.17g}) has h = {H[m, i, j]:.3e} "
                                             f"(band {B[m, i, j]:.1e}) at t = {t[m]:.17g}"))
    return out


def check_event_sequence(traj):
    """(c) No event recorded twice (same pair at the same t, or same (t, pair, kind)) and each pair's events
    follow its mode automaton: activate only from inactive, deactivate only from active, slide_start only off
    the surface, slide_end only while sliding."""
    out = []
    seen = Counter((float(e["t"]), str(e["kind"]), int(e["sample"]), int(e["layer"]), int(e["neuron"]))
                   for e in traj.events)
    for key, count in seen.items():
        if count > 1:
            out.append(Violation("duplicate_event", f"{key} recorded {count} times"))
    if np.any(np.diff(traj.events["t"]) < 0):
        out.append(Violation("inconsistent_kind", "event times are not sorted"))
    for (i, _, j), evs in _pair_events(traj.events).items():
        for (t0, k0), (t1, k1) in zip(evs[:-1], evs[1:]):
            if t0 == t1:
                out.append(Violation("duplicate_event",
                                     f"pair (sample {i}, neuron {j}) has {k0} and {k1} at the same t = {t0:.17g}"))
        mode = None  # unknown
        for t_e, kind in evs:
            allowed = {"activate": (None, -1), "deactivate": (None, 1), "slide_start": (None, 1, -1),
                       "slide_end": (None, 0)}[kind]
            if mode not in allowed:
                name = {1: "active", -1: "inactive", 0: "sliding"}[mode]
                out.append(Violation("inconsistent_kind",
                                     f"pair (sample {i}, neuron {j}): {kind} at t = {t_e:.17g} while {name}"))
            mode = {"activate": 1, "deactivate": -1, "slide_start": 0, "slide_end": None}[kind]
    return out


def check_events_on_surface(net, X, traj, traj_at_events, rtol, atol):
    """(b) The pair of every event has h ~ 0 at the event time: traj_at_events is a second run whose t_eval holds
    every event time. It must be the same trajectory (sampling does not perturb the integration)."""
    out = []
    if traj_at_events.status == "interrupted":
        return [Violation("timeout", "the second run (sampling the event times) was interrupted")]
    if not (np.array_equal(traj.theta, traj_at_events.theta) and traj.status == traj_at_events.status
            and np.array_equal(traj.events, traj_at_events.events)):
        out.append(Violation("t_eval_perturbs",
                             f"sampling at the event times changed the run: status {traj.status} -> "
                             f"{traj_at_events.status}, {traj.n_events} -> {traj_at_events.n_events} events, "
                             f"|dtheta| = {np.max(np.abs(traj.theta - traj_at_events.theta)):.2e}"))
        return out
    if traj.n_events == 0:
        return out
    te = traj_at_events.t_eval
    units_of = _units(net)
    H = preactivations_many(net, traj_at_events.theta_at, X)
    B = h_bands(net, traj_at_events.theta_at, X, rtol, atol)
    for e in traj.events:
        k = int(np.searchsorted(te, e["t"]))
        k = min(k, len(te) - 1)
        i, j = int(e["sample"]), units_of.index((int(e["layer"]), int(e["neuron"])))
        if not np.isfinite(H[k, i, j]) or abs(H[k, i, j]) > B[k, i, j]:
            out.append(Violation("spurious_event",
                                 f"{e['kind']} of pair (sample {i}, neuron {j}) at t = {e['t']:.17g}: "
                                 f"h = {H[k, i, j]:.3e} there (band {B[k, i, j]:.1e})"))
    return out


def sample_weights(loss, out, y):
    """G = -dL/dPhi per sample and output (the time factor of classification left out: it scales every G alike)."""
    if loss == "square":
        return y.reshape(out.shape) - out
    y = y.reshape(out.shape)
    q = y * out
    # logistic: 1 / (1 + e^q) in log space (1 - tanh(q / 2) loses every digit of a weight below 1e-16)
    return y * np.exp(-q if loss == "exponential" else -np.logaddexp(0.0, q))


def slide_multipliers(net, X, y, loss, theta, sliding):
    """The minimal-norm multipliers s (slopes in [0, 1]) of the sliding pairs {(sample, neuron)} of a plain
    two-layer net at theta, recomputed in NumPy: per neuron j, s minimises |F_wj + sum_i s_i b_ij x_i|, F the
    field with every sliding slope at 0 and the others read off the sign of h, b_ij = G_i . v_j. None where the
    sliding samples' inputs are dependent (s is not unique there)."""
    W1, W2 = (b[0] for b in _two_layer_blocks(net, theta))
    H = X @ W1.T
    S = (H > 0).astype(float)
    for i, j in sliding:
        S[i, j] = 0.0
    G = sample_weights(loss, (H * S) @ W2.T, y)
    back = G @ W2                                   # (n, width): b_ij
    Fw = (back * S).T @ X                           # the field's W1 block, one row per neuron
    out = {}
    for j in {j for _, j in sliding}:
        rows = [i for i, jj in sliding if jj == j]
        D = (back[rows, j][:, None] * X[rows]).T    # (d, k): the slope directions of neuron j's sliding pairs
        if np.linalg.matrix_rank(D) < len(rows):
            continue
        s, *_ = np.linalg.lstsq(D, -Fw[j], rcond=None)
        out.update({(i, j): v for i, v in zip(rows, s)})
    return out


def multiplier_noise(net, X, y, loss, theta, sliding, pair, s, rtol, atol, patterns=4):
    """How far an error of the state at the tolerance (rtol |theta| + atol, in fixed sign patterns) moves the
    multiplier s of `pair`: near a minimum of the square loss s is a ratio of vanishing residuals, and an exit
    within that noise neither confirms nor refutes the flow's."""
    signs = np.random.default_rng(0).choice([-1.0, 1.0], size=(patterns, theta.size))
    moved = [slide_multipliers(net, X, y, loss, theta + sign * (rtol * np.abs(theta) + atol), sliding).get(pair, s)
             for sign in signs]
    return float(np.max(np.abs(np.subtract(moved, s))))


def check_slide_exits(net, X, y, loss, traj, traj_at_events, rtol, atol):
    """(e) Every slide_end alone at its time is a real exit: the NumPy multiplier of the pair over the slides open
    then is at 0 or 1 (within EXIT_BAND, or within what the state's error moves it by), not inside, where the flow
    would go on sliding (plain two-layer nets).
    A slide_end beside other events at one time, or beside a pair that reached its surface there and kept its
    side (no event), is decided over the switches those bring as well: not checked."""
    out = []
    te = traj_at_events.t_eval
    times = traj.events["t"]
    open_slides = set()
    for e in traj.events:
        kind, pair = str(e["kind"]), (int(e["sample"]), int(e["neuron"]))
        alone = np.count_nonzero(np.abs(times - e["t"]) <= SAME_T * abs(e["t"])) == 1
        if kind == "slide_end" and pair in open_slides and alone:
            k = min(int(np.searchsorted(te, e["t"])), len(te) - 1)
            theta = traj_at_events.theta_at[k]
            on_surface = np.abs(preactivations_many(net, theta, X)[0]) <= h_bands(net, theta, X, rtol, atol)[0]
            unlogged = any((int(i), int(j)) not in open_slides for i, j in zip(*np.nonzero(on_surface)))
            s = None if unlogged else slide_multipliers(net, X, y, loss, theta, open_slides).get(pair)
            # (the noise is measured only for an s inside the fixed band: it can only widen that band)
            inside = s is not None and EXIT_BAND < s < 1.0 - EXIT_BAND
            if inside:
                noise = multiplier_noise(net, X, y, loss, theta, open_slides, pair, s, rtol, atol)
                inside = noise < s < 1.0 - noise
            if inside:
                out.append(Violation("unconfirmed_exit",
                                     f"slide_end of pair (sample {pair[0]}, neuron {pair[1]}) at t = {e['t']:.17g}: "
                                     f"its multiplier is {s:.3e} there, inside (0, 1)"))
        if kind == "slide_start":
            open_slides.add(pair)
        elif kind == "slide_end":
            open_slides.discard(pair)
    return out


def check_branches(net, X, y, loss, traj, traj_at_events, rtol, atol, branch="stay"):
    """(f) Every branch is one of the flow's unstable branching points, at its time (plain two-layer nets): the
    pair's slide starts there (entered with both one-sided fields pointing away: decided with the slide); or the
    pair slides and D = G_i . v_j, whose sign says whether its surface attracts, is 0 within what the state's error
    moves it by; or its neuron is pinned at w_j = 0, the inputs of the samples on its surfaces spanning R^d.
    branch="leave" (the flow's option): a pair that leaves its surface there instead (slide_end, activate or
    deactivate at t, or any side at t = 0) has D >= 0 to that noise (its surface repels), and after a slide D is
    within LEAVE_LEAD times the flow's noise of D, of the whole state's scale (the surface has just turned)."""
    out = []
    te, events = traj_at_events.t_eval, traj.events
    Y = np.asarray(y, dtype=float).reshape(X.shape[0], -1)
    open_slides = set()
    for e in events:
        kind, (i, j), t = str(e["kind"]), (int(e["sample"]), int(e["neuron"])), float(e["t"])
        if kind == "slide_start":
            open_slides.add((i, j))
        elif kind == "slide_end":
            open_slides.discard((i, j))
        if kind != "branch":
            continue
        at_t = np.abs(events["t"] - t) <= SAME_T * abs(t)
        if np.any(at_t & (events["kind"] == "slide_start") & (events["sample"] == i) & (events["neuron"] == j)):
            continue
        theta = traj_at_events.theta_at[min(int(np.searchsorted(te, t)), len(te) - 1)]
        H = preactivations_many(net, theta, X)[0]
        on_surface = np.abs(H[:, j]) <= h_bands(net, theta, X, rtol, atol)[0][:, j]
        if on_surface.any() and np.linalg.matrix_rank(X[on_surface]) == X.shape[1]:
            continue
        W1, W2 = (b[0] for b in _two_layer_blocks(net, theta))
        if loss == "square":
            G = Y[i] - (H[i] * (H[i] > 0)) @ W2.T
            terms = np.abs(W2) * (np.abs(W1) @ np.abs(X[i]))    # |W2_cj'| * (h_ij' terms)
            noise = (np.abs(Y[i]) + terms.sum(axis=1)) @ (np.abs(W2[:, j]) + 1.0)
        else:
            G, noise = Y[i], np.abs(W2).max()                  # sign(D) = sign(y_i v_j)
        D = G @ W2[:, j]
        allowed = H_BAND * (rtol * noise + atol)
        if (i, j) in open_slides and abs(D) <= allowed:
            continue
        if branch == "leave" and D >= -allowed:
            # the leave lead is counted in the flow's noise of D: each output weight's error scales with the whole
            # state (other components' errors flow into it), DENSE_ERROR (atol + rtol max|theta|) per unit of |G|,
            # plus for the square loss the outputs' error (within `allowed`). The flow measures max|theta| at its
            # step's start: a factor 2 for its change over the step.
            state = 2.0 * DENSE_ERROR * (atol + (rtol + 64 * EPS) * np.abs(theta).max()) * np.abs(G).sum()
            lead = LEAVE_LEAD * ((allowed if loss == "square" else 0.0) + state)
            left = {str(k) for k in events["kind"][at_t & (events["sample"] == i) & (events["neuron"] == j)]}
            if {"activate", "deactivate"} & left or t == 0.0 or ("slide_end" in left and D <= lead):
                continue
        out.append(Violation("unexplained_branch", f"branch of pair (sample {i}, neuron {j}) at t = {t:.17g}: "
                                                   f"D = {D:.3e}, and neuron {j} is not pinned at w = 0"))
    return out


def deep_slope_rate(net, X, y, loss, theta, i, u):
    """n . (F_active - F_inactive) of switch (sample i, hidden unit u) of a deep net, from the model's one-sided
    Jacobians and the switch's normal at theta (the other units' slopes from the signs of their pre-activations):
    > 0 where both one-sided fields point away from the surface; and its scale |G_i J_i| |n| (it vanishes itself
    with the signal the unit passes on, at a turn)."""
    core = net._core
    h = core.preactivations(theta, X)
    slopes = (h > 1e-9 * np.abs(h).max()).astype(float)
    G = sample_weights(loss, core.forward(theta, X), np.asarray(y, dtype=float).reshape(len(X), -1))[i]
    side = [slopes.copy(), slopes.copy()]
    side[0][i, u], side[1][i, u] = 0.0, 1.0
    J = [core.jacobian(theta, X[i:i + 1], s[i:i + 1])[0] for s in side]
    normal = core.switch_normals(theta, X[i:i + 1], slopes[i:i + 1])[0, u]
    return float(G @ (J[1] - J[0]) @ normal), float(np.linalg.norm(G @ J[0]) * np.linalg.norm(normal))


def _pinned(net, theta, normals, layer, neuron, rtol, atol):
    """Whether hidden unit (layer, neuron) of a deep net is pinned at w = 0: its incoming weights at 0 to the
    integration error, and the normals of its switches on their surfaces (at w = 0, their samples' inputs to the
    layer) spanning that row's space."""
    entries = net.maps[layer][neuron]
    params = sum(net.layer_params[:layer]) + entries[entries > 0] - 1    # the row's (every weight its own)
    if np.linalg.norm(theta[params]) > H_BAND * (rtol * np.linalg.norm(theta) + atol):
        return False
    return len(normals) > 0 and np.linalg.matrix_rank(normals[:, params]) == len(params)


def check_branches_deep(net, X, y, loss, traj, traj_at_events, rtol, atol):
    """(f) on nets of three or more layers: a branch's surface, with the switches of other samples that share it
    (same unit, parallel normals: crossed together, read as one, their D summed in the first one's normal), must
    start its slide there with D = deep_slope_rate > 0 (entered repelling), or slide with D at 0 within its noise (a
    turn). Checked where each of those switches is its sample's only one on its surface, as the flow watches only
    those (with others it would read the surface on its hull's corners, which NumPy does not reproduce). Or its unit
    is pinned at w = 0 (_pinned)."""
    out = []
    te, events = traj_at_events.t_eval, traj.events
    units = _units(net)
    for e in events[events["kind"] == "branch"]:
        i, t = int(e["sample"]), float(e["t"])
        u = units.index((int(e["layer"]), int(e["neuron"])))
        theta = traj_at_events.theta_at[min(int(np.searchsorted(te, t)), len(te) - 1)]
        on_surface = np.abs(preactivations_many(net, theta, X)[0]) <= h_bands(net, theta, X, rtol, atol)[0]
        slopes = (net._core.preactivations(theta, X) > 0).astype(float)
        normals = net._core.switch_normals(theta, X, slopes)[:, u]
        if _pinned(net, theta, normals[on_surface[:, u]], int(e["layer"]), int(e["neuron"]), rtol, atol):
            continue
        lengths = np.linalg.norm(normals, axis=1)
        along = normals @ normals[i]
        shared = np.flatnonzero(on_surface[:, u] & (along > 0) & (along >= (1 - 1e-9) * lengths * lengths[i]))
        if i not in shared or np.any(on_surface[shared].sum(axis=1) > 1):
            continue   # (a pair off its surface at its event is check_events_on_surface's finding)
        D = noise = 0.0
        for k in shared:
            rate, scale = deep_slope_rate(net, X, y, loss, theta, int(k), u)
            D += rate * lengths[i] / lengths[k]
            noise += (H_BAND * DENSE_ERROR * (rtol + 64 * EPS) + atol) * scale * lengths[i] / lengths[k]
        pair = np.isin(events["sample"], shared) & (events["layer"] == e["layer"]) & (events["neuron"] == e["neuron"])
        starts = np.any(pair & (events["kind"] == "slide_start") & (np.abs(events["t"] - t) <= SAME_T * abs(t)))
        if starts and D > -noise or abs(D) <= noise:
            continue
        out.append(Violation("unexplained_branch", f"branch of pair (sample {i}, unit {u}) at t = {t:.17g}: "
                                                   f"D = {D:.3e} (noise {noise:.1e}) over samples {list(shared)}, "
                                                   "each its sample's only switch on its surface"))
    return out


def check_conservation(net, traj, rtol=1e-10):
    """(d) ||w_j||^2 - ||v_j||^2 constant per hidden neuron (two-layer homogeneous networks), at every dense
    sample and at the end, relative to ||w_j||^2 + ||v_j||^2, up to CONSERVATION_TOL rtol."""
    tol = CONSERVATION_TOL * rtol
    ok = np.all(np.isfinite(traj.theta_at), axis=1)
    thetas = np.vstack([traj.theta_at[ok], traj.theta[None]])
    if len(thetas) < 2:
        return []
    c, s = balance(net, thetas)
    drift = np.abs(c - c[0]) / np.maximum(np.maximum(s, s[0]), 1e-300)
    worst = np.unravel_index(np.argmax(drift), drift.shape)
    if drift[worst] > tol:
        return [Violation("conservation", f"neuron {worst[1]}: relative drift {drift[worst]:.2e} of "
                                          f"||w||^2 - ||v||^2 at sample {worst[0]}")]
    return []


def check_loss_monotone(traj, rtol=1e-10, atol=1e-12, y=None):
    """(e) The loss never increases along the dense samples, beyond interpolation noise: a relative LOSS_TOL rtol
    (times max(1, |log L|) for the exponential tails) plus, for the square loss near its minimum, what a residual
    known to H_BAND (rtol |y| + atol) allows."""
    tol = LOSS_TOL * rtol
    loss = traj.loss_at[np.isfinite(traj.loss_at)]
    if len(loss) < 2:
        return []
    with np.errstate(divide="ignore"):
        allowed = tol * loss[:-1] * np.maximum(1.0, np.abs(np.log(loss[:-1])))
    if y is not None:
        delta = H_BAND * (rtol * np.sqrt(np.sum(np.asarray(y) ** 2)) + atol)
        allowed = allowed + np.sqrt(2 * loss[:-1]) * delta + delta**2
    excess = np.diff(loss) - allowed
    k = int(np.argmax(excess))
    if excess[k] > 0:
        return [Violation("loss_increase", f"loss {loss[k]:.17g} -> {loss[k + 1]:.17g} between samples {k} and "
                                           f"{k + 1} (allowed rise {allowed[k]:.2e})")]
    return []


def check_status(traj, loss, n, statuses=SENSIBLE_STATUSES, t_max=None):
    """(f) The status is in `statuses`, values are finite, a classification run is "stalled" only with L >= l(0)
    (the stall rule's condition; a run that reaches its horizon is "t_max" whatever its loss), and, given the
    horizon t_max, a "t_max" run ends there and no other does."""
    out = []
    if traj.status not in statuses:
        out.append(Violation("status", f"status {traj.status!r} ({traj.message})"))
    finite = (np.all(np.isfinite(traj.theta)) and np.isfinite(traj.loss)
              and (np.isfinite(traj.log_t) or (traj.t == 0 and traj.log_t == -np.inf)))
    ok = np.all(np.isfinite(traj.theta_at), axis=1)
    finite = finite and np.all(np.isfinite(traj.loss_at[ok])) and np.all(np.isfinite(traj.events["t"]))
    if not finite:
        out.append(Violation("nonfinite", f"NaN/inf in the result (status {traj.status})"))
    if (loss != "square" and traj.status == "stalled" and np.isfinite(traj.log_loss)
            and traj.log_loss < np.log(ell0(loss)) - 1e-12):
        out.append(Violation("status", f"stalled with L = {traj.loss:.17g} < l(0) = {ell0(loss):.17g}"))
    if t_max is not None and np.isfinite(traj.t):
        # the horizon in the integrator's own time tau, up to its rounding
        at_horizon = abs(traj.t - t_max) <= 1e-12 * max(1.0, t_max)
        if at_horizon != (traj.status == "t_max") and traj.status != "interrupted":
            out.append(Violation("status", f"status {traj.status!r} ends at t = {traj.t:.17g}, horizon {t_max!r}"))
    return out


def event_sample_times(traj, grid=None):
    """Sorted t_eval holding every event time (and the grid, if given)."""
    times = traj.events["t"] if grid is None else np.concatenate([grid, traj.events["t"]])
    return np.unique(np.asarray(times, dtype=float))


def check_problem(problem, n_grid=400, statuses=SENSIBLE_STATUSES):
    """Run `problem` twice (a grid of n_grid dense samples; then the event times as well) and apply every check.
    Returns (trajectory, list of Violation)."""
    net, X = problem.net, problem.X
    traj = problem.run(t_eval=time_grid(problem.loss, problem.t_max, n_grid))
    horizon = None if "log_t_max" in problem.options else problem.options.get("t_max", problem.t_max)
    violations = check_status(traj, problem.loss, X.shape[0], statuses, horizon)
    if traj.status == "interrupted":  # Ctrl-C or the fuzzer's time budget: nothing more to check
        return traj, violations
    again = problem.run(t_eval=event_sample_times(traj)) if traj.n_events else None
    violations += check_event_sequence(traj)
    violations += check_crossings(net, X, traj, problem.rtol, problem.atol, again)
    if net.depth == 2 and net.is_homogeneous:
        violations += check_conservation(net, traj, problem.rtol)
    violations += check_loss_monotone(traj, problem.rtol, problem.atol,
                                      problem.y if problem.loss == "square" else None)
    if traj.n_events:
        violations += check_events_on_surface(net, X, traj, again, problem.rtol, problem.atol)
        if net.is_two_layer and not any(v.kind == "t_eval_perturbs" for v in violations):
            violations += check_slide_exits(net, X, problem.y, problem.loss, traj, again, problem.rtol, problem.atol)
            violations += check_branches(net, X, problem.y, problem.loss, traj, again, problem.rtol, problem.atol,
                                         problem.options.get("branch", "stay"))
        elif net.depth >= 3 and not any(v.kind == "t_eval_perturbs" for v in violations):
            violations += check_branches_deep(net, X, problem.y, problem.loss, traj, again, problem.rtol,
                                              problem.atol)
    return traj, violations
