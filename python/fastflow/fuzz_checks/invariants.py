"""Checks of what every run keeps: conservation laws, a loss that never rises, a status that fits the problem."""
import numpy as np

from .common import CONSERVATION_TOL, H_BAND, LOSS_TOL, SENSIBLE_STATUSES, Violation, balance, ell0


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
