"""Checks of branch events: each is an unstable branching point, re-evaluated in NumPy (a slide entered with both
one-sided fields pointing away, a surface turning repulsive, a unit pinned at w = 0)."""
import numpy as np

from .common import (DENSE_ERROR, EPS, H_BAND, LEAVE_LEAD, SAME_T, Violation, _two_layer_blocks, _units, h_bands,
                     preactivations_many, sample_weights)

TURN_WINDOW = 1e-3   # relative: deep turns whose noise floor vanishes are checked by D's sign this far from t


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
        pair = (events["sample"] == i) & (events["neuron"] == j)
        if np.any(at_t & (events["kind"] == "slide_start") & pair):
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
            left = {str(k) for k in events["kind"][at_t & pair]}
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


def _slide_entered_repelling(events, pair, t):
    """Whether the pair's slide ending at t began with a branch (entered with both one-sided fields pointing away)."""
    starts = events["t"][pair & (events["kind"] == "slide_start") & (events["t"] < t)]
    if not len(starts):
        return False
    t0 = starts.max()
    return bool(np.any(pair & (events["kind"] == "branch") & (np.abs(events["t"] - t0) <= SAME_T * abs(t0))))


def _normal_lengths(net, theta, X, u):
    """|n| of every sample's switch of hidden unit u at theta, and the normals themselves."""
    slopes = (net._core.preactivations(theta, X) > 0).astype(float)
    normals = net._core.switch_normals(theta, X, slopes)[:, u]
    return np.linalg.norm(normals, axis=1), normals


def _shared_rate(net, X, y, loss, theta, shared, u, i, rtol, atol, lengths=None):
    """(D, noise) of unit u's surface shared by the samples `shared`: their deep_slope_rate summed in sample i's
    normal (each times |n_i| / |n_k|; lengths: the normals' at theta, if known), and what a state error at the
    tolerance moves that sum by."""
    if lengths is None:
        lengths = _normal_lengths(net, theta, X, u)[0]
    D = noise = 0.0
    for k in shared:
        rate, scale = deep_slope_rate(net, X, y, loss, theta, int(k), u)
        D += rate * lengths[i] / lengths[k]
        noise += (H_BAND * DENSE_ERROR * (rtol + 64 * EPS) + atol) * scale * lengths[i] / lengths[k]
    return D, noise


def check_branches_deep(net, X, y, loss, traj, traj_at_events, rtol, atol, branch="stay", theta_near=None):
    """(f) on nets of three or more layers: a branch's surface, with the switches of other samples that share it
    (same unit, parallel normals: crossed together, read as one, their D summed in the first one's normal), must
    start its slide there with D = deep_slope_rate > 0 (entered repelling), or slide with D at 0 within its noise (a
    turn). Checked where each of those switches is its sample's only one on its surface, as the flow watches only
    those (with others it would read the surface on its hull's corners, which NumPy does not reproduce). Or its unit
    is pinned at w = 0 (_pinned). theta_near (times -> states of the flow there, for a stay flow): a turn is also
    D < 0 before and > 0 after, t -+ TURN_WINDOW. branch="leave": as check_branches, a pair that leaves its surface
    there instead has D >= 0 to its noise, and after a slide D within LEAVE_LEAD times that noise, unless that slide
    was entered repelling or lies on a dead path (noise 0)."""
    out = []
    te, events = traj_at_events.t_eval, traj.events
    units = _units(net)
    for e in events[events["kind"] == "branch"]:
        i, t = int(e["sample"]), float(e["t"])
        u = units.index((int(e["layer"]), int(e["neuron"])))
        theta = traj_at_events.theta_at[min(int(np.searchsorted(te, t)), len(te) - 1)]
        on_surface = np.abs(preactivations_many(net, theta, X)[0]) <= h_bands(net, theta, X, rtol, atol)[0]
        lengths, normals = _normal_lengths(net, theta, X, u)
        if _pinned(net, theta, normals[on_surface[:, u]], int(e["layer"]), int(e["neuron"]), rtol, atol):
            continue
        along = normals @ normals[i]
        shared = np.flatnonzero(on_surface[:, u] & (along > 0) & (along >= (1 - 1e-9) * lengths * lengths[i]))
        if i not in shared or np.any(on_surface[shared].sum(axis=1) > 1):
            continue   # (a pair off its surface at its event is check_events_on_surface's finding)
        D, noise = _shared_rate(net, X, y, loss, theta, shared, u, i, rtol, atol, lengths)
        pair = np.isin(events["sample"], shared) & (events["layer"] == e["layer"]) & (events["neuron"] == e["neuron"])
        at_t = np.abs(events["t"] - t) <= SAME_T * abs(t)
        starts = np.any(pair & (events["kind"] == "slide_start") & at_t)
        if starts and D > -noise or abs(D) <= noise:
            continue
        if branch == "stay" and not starts and theta_near is not None and 0.0 < t:
            # a turn whose noise floor vanishes with the unit's output weight (it crosses 0 there): D changes sign
            # from before to after, t -+ TURN_WINDOW
            around = theta_near([t * (1 - TURN_WINDOW), min(t * (1 + TURN_WINDOW), float(traj.t))])
            rates = [_shared_rate(net, X, y, loss, th, shared, u, i, rtol, atol)[0] for th in around]
            if rates[0] < 0.0 < rates[1]:
                continue
        if branch == "leave" and D >= -noise:
            left = {str(k) for k in events["kind"][pair & at_t]}
            # after a slide entered repelling (held on its surface since by slides whose normals span its own) or
            # one on a dead path (noise 0: its sample's output is 0 with the switch off, and the flow watches no
            # turn there), D is no longer near 0 where the slide is left
            if {"activate", "deactivate"} & left or t == 0.0 or ("slide_end" in left and (
                    D <= LEAVE_LEAD * noise or noise == 0.0
                    or _slide_entered_repelling(events, pair & (events["sample"] == i), t))):
                continue
        out.append(Violation("unexplained_branch", f"branch of pair (sample {i}, unit {u}) at t = {t:.17g}: "
                                                   f"D = {D:.3e} (noise {noise:.1e}) over samples {list(shared)}, "
                                                   "each its sample's only switch on its surface"))
    return out
