"""Datasets: inputs X (n, d) and targets y."""
from __future__ import annotations

import numpy as np

from ._validate import real_array


class Dataset:
    """Validated training data.

    X: (n, d) float64. y: (n,) of +-1 (binary losses) or (n, d_out) real targets (square loss); a 1-D y is read as
    one target per sample.
    """

    def __init__(self, X, y):
        self.X = real_array("X", X, ndim=2)
        self.y = real_array("y", y, ndim=(1, 2))
        if self.X.shape[0] == 0:
            raise ValueError("X must hold at least one sample")
        if self.X.shape[1] == 0:
            raise ValueError("X must have at least one column")
        if self.y.shape[0] != self.X.shape[0]:
            raise ValueError(f"y has {self.y.shape[0]} samples but X has {self.X.shape[0]}")

    @property
    def n(self):
        return self.X.shape[0]

    @property
    def d(self):
        return self.X.shape[1]

    def binary_labels(self, loss):
        """y as (n,) labels, checked to be +-1 for a binary classification loss."""
        y = self.y.reshape(self.n, -1)
        if y.shape[1] != 1:
            raise ValueError(f"y must be 1-D labels for the {loss} loss, got shape {self.y.shape}")
        y = y[:, 0]
        if not np.all(np.abs(y) == 1.0):
            raise ValueError(f"y: labels must be +1 or -1 for the {loss} loss")
        return np.ascontiguousarray(y)

    def one_vs_all(self, loss, n_classes):
        """(n, K) labels +-1 for a one-vs-all classification loss: y_nk = +1 if sample n is of class k, else -1
        (from integer class labels in [0, K), or given directly as a +-1 matrix)."""
        if self.y.ndim == 2:
            if self.y.shape[1] != n_classes or not np.all(np.abs(self.y) == 1.0):
                raise ValueError(f"y must be (n, {n_classes}) labels +-1 or integer classes for the {loss} loss")
            return self.y
        classes = self.y
        if not np.all(classes == np.round(classes)) or classes.min() < 0 or classes.max() >= n_classes:
            raise ValueError(f"y: class labels must be integers in [0, {n_classes}) for the {loss} loss with "
                             f"d_out = {n_classes}")
        return np.where(classes[:, None] == np.arange(n_classes)[None, :], 1.0, -1.0)

    def targets(self, d_out):
        """y as (n, d_out) regression targets for the square loss."""
        y = self.y.reshape(self.n, -1)
        if y.shape[1] != d_out:
            raise ValueError(f"y must have d_out = {d_out} targets per sample, got shape {self.y.shape}")
        return np.ascontiguousarray(y)

    def __repr__(self):
        return f"Dataset(n={self.n}, d={self.d}, y shape {self.y.shape})"


def as_dataset(data):
    if isinstance(data, Dataset):
        return data
    if isinstance(data, tuple) and len(data) == 2:
        return Dataset(*data)
    raise TypeError("data must be a fastflow.Dataset or a tuple (X, y)")
