"""Plain JSON values from NumPy arrays and scalars: results files and checkpoints hold no NaN or infinity."""
from __future__ import annotations

import math

import numpy as np


def jsonable(x):
    """x with dict keys as strings, arrays and tuples as lists, NumPy scalars as Python ones, non-finite floats
    as None."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.bool_):
        return bool(x)
    return x
