"""fastflow: the exact (sub)gradient flow of small linear/ReLU networks."""
from . import experiments, init
from ._version import __version__
from .analysis import Report, analyze
from .arrangements import arrangements, sign_patterns
from .convex import convex_max_margin
from .data import Dataset
from .experiment import Experiment
from .flow import EVENT_KINDS, STATUSES, Trajectory, flow, flow_many
from .networks import Network, conv_disjoint, diagonal, fully_connected, two_layer
from .rank import rank, stable_rank
from .results import Estimate


def __getattr__(name):
    # the runner (process pools, progress bars) loads on first use of ff.estimate
    if name == "estimate":
        from .montecarlo import estimate
        return estimate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Report", "analyze", "arrangements", "convex_max_margin", "sign_patterns", "Dataset", "EVENT_KINDS",
           "Estimate", "Experiment", "Network", "STATUSES", "Trajectory", "conv_disjoint", "diagonal", "estimate",
           "experiments", "flow", "flow_many", "fully_connected", "init", "rank", "stable_rank", "two_layer"]
