"""Checks at the public boundary: every bad input becomes a ValueError/TypeError naming the argument."""
from __future__ import annotations

import numbers
import os
import operator

import numpy as np


def real_array(name, value, ndim=None):
    """`value` as a C-contiguous float64 array of finite numbers."""
    arr = np.asarray(value)
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} must be real, got a complex array")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be an array of real numbers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if ndim is not None and arr.ndim not in (ndim if isinstance(ndim, tuple) else (ndim,)):
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def positive_int(name, value, minimum=1):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got a bool")
    if not isinstance(value, numbers.Integral):
        try:
            value = operator.index(value)
        except TypeError:
            raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return min(int(value), 2**63 - 1)  # beyond the C++ counters: no limit


def real_scalar(name, value, *, low=None, high=None, low_open=False, allow_inf=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if np.isnan(value) or (np.isinf(value) and not allow_inf):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def boolean(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__}")
    return bool(value)


def choice(name, value, options):
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}")
    return value


def available_memory():
    """Bytes the system can still give (Linux MemAvailable; else free physical pages; else unknown: inf)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return float("inf")


# Requests below this are not checked: any machine running Python has it, and reading /proc/meminfo would cost a
# small flow a tenth of its time.
unchecked_bytes = 64 * 2**20


def check_memory(what, needed, hint, at_least=False):
    """MemoryError before allocating `needed` bytes that the system does not have (not a crash half-way).
    at_least: `needed` is only a lower bound."""
    if needed < unchecked_bytes:
        return
    available = available_memory()
    if needed > available:
        raise MemoryError(f"{what} needs {'at least' if at_least else 'about'} {needed / 2**30:.3g} GiB but "
                          f"{available / 2**30:.3g} GiB are available: {hint}")
