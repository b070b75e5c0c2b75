"""Settings shared by compare.py's sections: GD's step, the methods and their tolerances, the random workloads."""

GD_LR = 1e-4
AGREE = 1e-3            # "followed the slide": final theta within this relative distance of the reference
RANDOM_T_MAX = 50.0
SQUARE_GTOL = 1e-13     # replaced by tests/reference.py's GTOL when the yardstick loads (read it as config.SQUARE_GTOL)
RANDOM_SHAPE = dict(d=5, width=16)
RANDOM_CASES = [(10, "exponential"), (10, "logistic"), (100, "exponential"), (100, "logistic")]
LOSS_ABBREV = {"exponential": "exp", "logistic": "log", "square": "sq"}
REF = "scipy@1e-12"
FF = "fastflow@1e-10"
METHODS = ["gd-numpy", "gd-torch", REF, "scipy@1e-10", FF, "fastflow@1e-12"]
# (rtol, atol) per method; the rank problem starts at |theta| ~ 1e-4, so its atol is 100x smaller. The square loss
# stops at a stationary point: fastflow is given the yardstick's rule (||grad|| <= GTOL of tests/reference.py, 1e-13)
# instead of its default gtol 1e-10, which would leave the drift still to come (~1e-10) in the final-theta error.
TOLS = {"random": {REF: (1e-12, 1e-14), "scipy@1e-10": (1e-10, 1e-12), FF: (1e-10, 1e-12),
                   "fastflow@1e-12": (1e-12, 1e-14)},
        "rank2x2": {REF: (1e-12, 1e-14), "scipy@1e-10": (1e-10, 1e-14), FF: (1e-10, 1e-14),
                    "fastflow@1e-12": (1e-12, 1e-16)}}
