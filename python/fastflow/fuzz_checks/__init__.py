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

tests/test_events.py, tests/test_adversarial.py and tests/test_fuzz.py use them directly. One file per family of
checks; check_problem applies them all.
"""
from __future__ import annotations

from .branches import check_branches, check_branches_deep, deep_slope_rate
from .common import (CONSERVATION_TOL, DENSE_ERROR, EPS, EXIT_BAND, H_BAND, LEAVE_LEAD, LOSS_TOL, SAME_T,
                     SENSIBLE_STATUSES, VIOLATION_KINDS, Problem, Violation, _two_layer_blocks, balance, dead_inputs,
                     ell0, h_bands, jacobian_descent, preactivations_many, sample_weights)
from .events import check_crossings, check_event_sequence, check_events_on_surface
from .invariants import check_conservation, check_loss_monotone, check_status
from .problems import event_sample_times, random_deep_problem, random_problem, time_grid
from .slides import check_slide_exits, multiplier_noise, slide_multipliers

__all__ = ["CONSERVATION_TOL", "DENSE_ERROR", "EPS", "EXIT_BAND", "H_BAND", "LEAVE_LEAD", "LOSS_TOL", "SAME_T",
           "SENSIBLE_STATUSES", "VIOLATION_KINDS", "Problem", "Violation", "balance", "check_branches",
           "check_branches_deep", "check_conservation", "check_crossings", "check_event_sequence",
           "check_events_on_surface", "check_loss_monotone", "check_problem", "check_slide_exits", "check_status",
           "dead_inputs", "deep_slope_rate", "ell0", "event_sample_times", "h_bands", "jacobian_descent",
           "multiplier_noise",
           "preactivations_many", "random_deep_problem", "random_problem", "sample_weights", "slide_multipliers",
           "time_grid", "_two_layer_blocks"]


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
                                              problem.atol, problem.options.get("branch", "stay"),
                                              lambda times: problem.run(t_eval=times).theta_at)
    return traj, violations
