"""Accuracy of a run against the reference: final theta, matched events, GD's first switches, slides."""
import numpy as np


def theta_error(theta, ref):
    return float(np.linalg.norm(theta - ref) / max(np.linalg.norm(ref), 1e-300))


def match_events(ref_events, events):
    """Pair the k-th event of each (kind, sample, neuron) with the reference's k-th; max |dt| over the pairs."""
    def by_key(evs):
        out = {}
        for t, kind, i, _, j in sorted(evs):
            out.setdefault((kind, i, j), []).append(t)
        return out
    a, b = by_key(ref_events), by_key(events)
    dts = [abs(x - y) for key in a.keys() & b.keys() for x, y in zip(a[key], b[key])]
    return dict(n_ref=len(ref_events), n_method=len(events), n_matched=len(dts),
                event_dt=max(dts) if dts else None)


def match_first_switches(ref_events, first_switch, width):
    """GD: first sign change of each pair (i, j) against the reference's first event of that pair at t > 0."""
    ref_first = {}
    for t, _, i, _, j in sorted(ref_events):
        if t > 0:
            ref_first.setdefault((i, j), t)
    dts, gd_pairs = [], 0
    for k, t in enumerate(first_switch):
        if np.isnan(t):
            continue
        gd_pairs += 1
        key = (k // width, k % width)
        if key in ref_first:
            dts.append(abs(t - ref_first[key]))
    return dict(n_ref=len(ref_first), n_method=gd_pairs, n_matched=len(dts), event_dt=max(dts) if dts else None)


def slides(events):
    return any(kind == "slide_start" for _, kind, *_ in events)
