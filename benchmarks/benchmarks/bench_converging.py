"""asv: flows that converge to a finite point. Two-layer ReLU nets, Xavier init, seeds 1000-1019 (the first 5 by
default, all 20 with FASTFLOW_BENCH_LARGE=1), to t = 1000:
- square loss, random targets, n = 20, d = 5, width 16 (and width 64): residuals that vanish, slides whose
  multipliers become ratios of vanishing numbers;
- exponential and logistic loss, random labels, n = 8, d = 2, width 5: data the net may not separate, a loss
  that settles above zero, stiffness;
- logistic loss, 3 classes, random labels, n = 16, d = 3, width 6: several outputs, whose runs take thousands of
  explicit steps per decade of t where the net cannot separate the classes.
Tracks the batch's median and worst time per run, fields per accepted step, steps and events per run, and the most
slides one switch logs in a run.
"""
import collections
import time

import numpy as np

import fastflow as ff

from .common import large_enabled

BATCHES = {  # loss, n, d, width, classes (1: one output)
    "square-n20-w16": ("square", 20, 5, 16, 1),
    "square-n20-w64": ("square", 20, 5, 64, 1),
    "exponential-n8-w5": ("exponential", 8, 2, 5, 1),
    "logistic-n8-w5": ("logistic", 8, 2, 5, 1),
    "logistic-3class-n16-w6": ("logistic", 16, 3, 6, 3),
}


def batch_problem(batch, seed):
    loss, n, d, width, classes = BATCHES[batch]
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    if classes > 1:
        y = rng.integers(0, classes, size=n)
    else:
        y = rng.standard_normal(n) if loss == "square" else np.where(rng.random(n) < 0.5, -1.0, 1.0)
    net = ff.two_layer(d, width, classes)
    return net, (X, y), ff.init.xavier(net, rng), loss


def most_slides(traj):
    starts = traj.events[traj.events["kind"] == "slide_start"]
    counts = collections.Counter(zip(starts["sample"].tolist(), starts["neuron"].tolist()))
    return max(counts.values(), default=0)


class ConvergingBatch:
    params = list(BATCHES)
    param_names = ["batch"]
    timeout = 3600

    def setup(self, batch):
        seeds = range(1000, 1020 if large_enabled() else 1005)
        self.seconds, self.trajs = [], []
        for seed in seeds:
            net, data, theta0, loss = batch_problem(batch, seed)
            start = time.process_time()
            self.trajs.append(ff.flow(net, data, theta0, loss=loss, t_max=1000.0))
            self.seconds.append(time.process_time() - start)

    def track_median_seconds(self, batch):
        return float(np.median(self.seconds))

    def track_worst_seconds(self, batch):
        return max(self.seconds)

    def track_fields_per_step(self, batch):
        return sum(t.n_rhs for t in self.trajs) / max(sum(t.n_steps for t in self.trajs), 1)

    def track_steps_per_run(self, batch):
        return float(np.mean([t.n_steps for t in self.trajs]))

    def track_events_per_run(self, batch):
        return float(np.mean([t.n_events for t in self.trajs]))

    def track_most_slides_of_one_switch(self, batch):
        return max(most_slides(t) for t in self.trajs)
