"""The top principal directions of a layer's activations: the basis of the latent editor and of parallel coordinates.

A large layer (a conv feature map of thousands of units) cannot get one slider or one axis per unit. Its top ``k``
principal directions can: :class:`PrincipalDirections` fits a PCA on (a seeded sample of) the flattened
activations and projects every row, in chunks, so a memory-mapped ``(100_000, 6272)`` array never needs a full-size
temporary.

Coordinates are projections onto the directions around the mean, ``coords = (x - mean_) @ components_.T``;
``inverse_transform`` maps them back, ``mean_ + coords @ components_``.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .errors import InspectorError

__all__ = ["PrincipalDirections"]


class PrincipalDirections(TransformerMixin, BaseEstimator):
    """Top principal directions of activations ``X`` (n, d), fitted on at most ``fit_sample`` rows.

    Parameters
    ----------
    n_components : int, default=16
        Directions to keep; capped at ``min(d, rows fitted)``.
    fit_sample : int or None, default=20_000
        Fit on this many seeded random rows (``None``: all rows). Every row is still projected by ``transform``.
    chunk_size : int, default=4096
        Rows projected at a time.
    random_state : int, default=0

    Attributes
    ----------
    mean_ : ndarray of shape (d,), float64
    components_ : ndarray of shape (k, d), float64
        Orthonormal rows, by decreasing explained variance.
    explained_variance_ratio_ : ndarray of shape (k,)
    n_features_in_ : int

    Example
    -------
    >>> X = np.random.default_rng(0).normal(size=(200, 40)).astype(np.float32)
    >>> PrincipalDirections(n_components=4).fit(X).transform(X).shape
    (200, 4)
    """

    def __init__(self, n_components=16, fit_sample=20_000, chunk_size=4096, random_state=0):
        self.n_components = n_components
        self.fit_sample = fit_sample
        self.chunk_size = chunk_size
        self.random_state = random_state

    def fit(self, X, y=None):
        """Fit the directions on ``X`` (n, d); returns ``self``.

        Raises
        ------
        InspectorError
            ``X`` is not 2-D, has fewer than two rows, or ``n_components`` is not a positive integer.
        """
        from sklearn.decomposition import PCA

        if getattr(X, "ndim", None) != 2:
            X = np.asarray(X)
        if X.ndim != 2 or len(X) < 2:
            raise InspectorError(
                f"principal directions need activations of shape (samples >= 2, units), got shape {X.shape}"
            )
        if not isinstance(self.n_components, (int, np.integer)) or self.n_components < 1:
            raise InspectorError(f"n_components must be a positive integer, got {self.n_components!r}")
        n, d = X.shape
        rows = np.arange(n)
        if self.fit_sample is not None and n > self.fit_sample:
            rows = np.sort(check_random_state(self.random_state).choice(n, size=int(self.fit_sample), replace=False))
        X_fit = np.asarray(X[rows] if len(rows) < n else X, dtype=np.float64)
        k = int(min(self.n_components, d, len(X_fit)))
        pca = PCA(n_components=k, svd_solver="auto", random_state=self.random_state).fit(X_fit)
        self.mean_ = pca.mean_.astype(np.float64)
        self.components_ = pca.components_.astype(np.float64)
        self.explained_variance_ratio_ = pca.explained_variance_ratio_.astype(np.float64)
        self.n_features_in_ = d
        return self

    def transform(self, X) -> np.ndarray:
        """Coordinates of each row of ``X`` (n, d) along the directions: (n, k) float32, computed in chunks."""
        check_is_fitted(self, "components_")
        if getattr(X, "ndim", None) != 2:
            X = np.asarray(X).reshape(-1, self.n_features_in_)
        if X.shape[1] != self.n_features_in_:
            raise InspectorError(
                f"principal directions were fitted on {self.n_features_in_} units, got rows of {X.shape[1]}"
            )
        out = np.empty((len(X), len(self.components_)), dtype=np.float32)
        step = max(1, int(self.chunk_size))
        for lo in range(0, len(X), step):
            block = np.asarray(X[lo : lo + step], dtype=np.float64)
            out[lo : lo + step] = (block - self.mean_) @ self.components_.T
        return out

    def inverse_transform(self, C) -> np.ndarray:
        """Rows back in the layer's flattened space: ``mean_ + C @ components_`` (n, d) float64.

        Example
        -------
        >>> pd_ = PrincipalDirections(n_components=3).fit(np.eye(4))
        >>> pd_.inverse_transform(np.zeros(3)).round(2)
        array([[0.25, 0.25, 0.25, 0.25]])
        """
        check_is_fitted(self, "components_")
        C = np.asarray(C, dtype=np.float64).reshape(-1, len(self.components_))
        return self.mean_ + C @ self.components_
