"""The entry points: :func:`fit`, the table of solvers by name, and the fastl2lir-like estimator."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bhscore.ridge.backend import device_budget, resolve_device, resolve_dtype
from bhscore.ridge.gram import MAX_GRAM_INPUTS, GramInputs
from bhscore.ridge.inputs import as_input, as_outputs, host_array
from bhscore.ridge.reference import fit_reference
from bhscore.ridge.result import RidgeFit
from bhscore.ridge.wide import WideOptions, fit_wide


def fit(
    X,
    Y,
    alpha: float = 1.0,
    n_feat: int = 0,
    *,
    dtype="float64",
    device=None,
    mode: str = "auto",
    batch_size: int | None = None,
    chunk_size: int | None = None,
    budget: int | None = None,
    progress: bool = False,
    y_rows: np.ndarray | None = None,
    exact_rows: bool = False,
    solve_dtype=None,
) -> RidgeFit:
    """Fit FastL2LiR: per output, the ``n_feat`` inputs with the largest |r|, then ridge with a bias.

    Parameters
    ----------
    X : array_like of shape (n_samples, n_inputs), numpy.memmap, or InputMatrix
        An :class:`InputMatrix` whose ``rows`` repeat (encoding: features per image, each image shown
        several times) is fitted with the per-image algebra (see :class:`GramInputs`).
    Y : array_like of shape (n_samples, n_outputs), or (n_rows, n_outputs) with ``y_rows``
    alpha : float
        L2 penalty, added to the whole diagonal (the bias entry included).
    n_feat : int
        Inputs selected per output; 0 or >= n_inputs: no selection (plain ridge).
    dtype : {'float64', 'float32'}
        Precision of the whole computation (inputs are cast first, as fastl2lir does).
    device : str or torch.device, optional
        'cpu', 'cuda', 'cuda:1', ...; None or 'auto': CUDA when available.
    mode : {'auto', 'gram', 'wide'}
        'gram' forms the (n_inputs + 1)^2 Gram once; 'wide' never does (chunked correlation, sub-Grams from
        the selected columns). 'auto': 'gram' up to ``MAX_GRAM_INPUTS`` inputs.
    batch_size : int, optional
        Outputs solved together (default: from ``budget``).
    chunk_size : int, optional
        Input columns per chunk in wide mode (default: from ``budget``).
    budget : int, optional
        Bytes allowed for the working set beyond the inputs, the Gram and the results (default: 512 MiB; on
        a GPU up to a quarter of its free memory).
    progress : bool
        Show tqdm progress bars.
    y_rows : ndarray of shape (n_samples,) of int, optional
        The outputs of sample i are ``Y[y_rows[i]]`` (decoding: the features of the image shown); fitted
        per image in Gram mode, expanded in wide mode.
    exact_rows : bool
        Compute on the row-expanded samples, never per image (the arithmetic of fastl2lir; for checking).
    solve_dtype : {'float32', 'float64'}, optional
        Precision of the Gram, the right-hand sides and the solves when it differs from ``dtype`` (the
        selection's and the stored weights'): ``dtype='float32', solve_dtype='float64'`` is the arithmetic of
        fastl2lir <= 0.7 called with dtype float32 (its bias column was float64). No effect without selection
        (fastl2lir's plain ridge ran wholly in dtype).

    Returns
    -------
    RidgeFit
    """
    dt = resolve_dtype(dtype)
    sd = resolve_dtype(solve_dtype) if solve_dtype is not None else None
    dev = resolve_device(device)
    src = as_input(X, dt)
    _check_parameters(mode, n_feat, alpha)
    if mode == "auto":
        mode = "gram" if src.shape[1] <= MAX_GRAM_INPUTS else "wide"
    budget = device_budget(budget, dev)
    if mode == "gram":
        return GramInputs(src, dt, dev, exact_rows=exact_rows, solve_dtype=sd).fit(
            Y, alpha, n_feat, batch_size=batch_size, budget=budget, progress=progress, y_rows=y_rows
        )
    if y_rows is not None:
        Y = host_array(Y)[np.asarray(y_rows, dtype=np.int64)]
    opts = WideOptions(dev, batch_size, chunk_size, budget, progress, sd)
    return fit_wide(src, as_outputs(Y, src.shape[0], dt), alpha, n_feat, opts, exact_rows)


def _check_parameters(mode: str, n_feat: int, alpha: float) -> None:
    if mode not in ("auto", "gram", "wide"):
        raise ValueError(f"mode must be 'auto', 'gram' or 'wide', got {mode!r}")
    if n_feat < 0:
        raise ValueError(f"n_feat must be >= 0, got {n_feat}")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")


#: A solver: ``solver(X, Y, alpha, n_feat, *, dtype, device, mode, batch_size, chunk_size, budget,
#: progress, y_rows, exact_rows) -> RidgeFit`` (the parameters of :func:`fit`; a solver ignores those it has
#: no use for).
Solver = Callable[..., RidgeFit]

#: The solvers by name (``analysis.<kind>.solver``, ``--solver``): bhscore's batched FastL2LiR (CPU/CUDA)
#: and the reference package. A new solver is a function with :func:`fit`'s signature, added here.
SOLVERS: dict[str, Solver] = {"batched": fit, "fastl2lir": fit_reference}


def get_solver(name: str) -> Solver:
    """The solver called ``name`` in :data:`SOLVERS` (``ValueError`` naming the solvers otherwise)."""
    try:
        return SOLVERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"solver must be one of {tuple(SOLVERS)}, got {name!r}") from None


class FastL2LiR:
    """Estimator with fastl2lir's interface (``fit(X, Y, alpha, n_feat)``, ``predict``, ``W``, ``b``).

    Parameters
    ----------
    solver : {'batched', 'fastl2lir'}
        A name of :data:`SOLVERS`: 'batched': :func:`fit` (CPU/CUDA); 'fastl2lir': the reference package.
    dtype, device, mode, batch_size : see :func:`fit`
    """

    def __init__(
        self, solver: str = "batched", dtype="float64", device=None, mode: str = "auto", batch_size=None
    ):
        self._solve = get_solver(solver)
        self.solver, self.dtype, self.device, self.mode = solver, dtype, device, mode
        self.batch_size = batch_size
        self.result: RidgeFit | None = None

    def fit(self, X, Y, alpha: float = 1.0, n_feat: int = 0) -> FastL2LiR:
        self.result = self._solve(X, Y, alpha, n_feat, dtype=self.dtype, device=self.device, mode=self.mode,
                                  batch_size=self.batch_size)  # fmt: skip
        return self

    def _fitted(self) -> RidgeFit:
        if self.result is None:
            raise RuntimeError("call fit() first")
        return self.result

    @property
    def W(self) -> np.ndarray:
        return self._fitted().W

    @property
    def b(self) -> np.ndarray:
        return self._fitted().b

    def predict(self, X) -> np.ndarray:
        return self._fitted().predict(X)
