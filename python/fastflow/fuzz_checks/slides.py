"""Checks of slide exits (two-layer nets): a lone slide_end is where its minimal-norm multiplier, recomputed in NumPy
from the one-sided fields, reaches 0 or 1."""
import numpy as np

from .common import EXIT_BAND, SAME_T, Violation, _two_layer_blocks, h_bands, preactivations_many, sample_weights


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
