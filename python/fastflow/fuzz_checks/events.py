"""Checks of the event log against the dense output: no missed crossing, modes that follow their automaton, every
event on its surface."""
from __future__ import annotations

from collections import Counter

import numpy as np

from .common import (SAME_T, Violation, _pair_events, _significant_signs, _units, dead_inputs, h_bands,
                     preactivations_many)


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
