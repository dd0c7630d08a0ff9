"""A fitted FastL2LiR model: the weights of the selected inputs, the bias, and predictions."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bhscore.ridge.solve import batches


@dataclass
class RidgeFit:
    """A fitted FastL2LiR model.

    Attributes
    ----------
    coef : ndarray
        With selection: shape (n_outputs, n_feat), the weight of each output's selected inputs (in the order
        of ``selection``). Without selection: the dense weights, shape (n_inputs, n_outputs).
    b : ndarray of shape (1, n_outputs)
    selection : ndarray of shape (n_outputs, n_feat) of int64, or None
        Selected input indices per output, ascending.
    n_inputs : int
    info : dict
        How the fit went (for benchmarks and logs): seconds per phase, outputs decided by the per-image
        values, the near-tie band or whole exact columns.
    """

    coef: np.ndarray
    b: np.ndarray
    selection: np.ndarray | None
    n_inputs: int
    info: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_outputs(self) -> int:
        return self.b.shape[1]

    @property
    def W(self) -> np.ndarray:
        """Dense weights, shape (n_inputs, n_outputs) (zeros outside the selection), as fastl2lir's ``W``."""
        if self.selection is None:
            return self.coef
        W = np.zeros((self.n_inputs, self.n_outputs), dtype=self.coef.dtype)
        W[self.selection, np.arange(self.n_outputs)[:, None]] = self.coef
        return W

    def predict(self, X, batch_size: int = 256) -> np.ndarray:
        """Predictions ``X W + b``.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_inputs)

        Returns
        -------
        ndarray of shape (n_samples, n_outputs), the dtype of the fit
        """
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_inputs:
            raise ValueError(f"X must be (n_samples, {self.n_inputs}), got {X.shape}")
        X = X.astype(self.coef.dtype, copy=False)
        if self.selection is None or self.n_inputs * self.n_outputs <= 50_000_000:
            return X @ self.W + self.b
        out = np.empty((X.shape[0], self.n_outputs), dtype=self.coef.dtype)
        for a, z in batches(self.n_outputs, batch_size):
            Xg = X[:, self.selection[a:z]]  # (n, B, k)
            out[:, a:z] = np.einsum("nbk,bk->nb", Xg, self.coef[a:z]) + self.b[:, a:z]
        return out
