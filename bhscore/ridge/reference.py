"""The reference implementation, PyPI ``fastl2lir`` 0.11, behind :func:`bhscore.ridge.fit`'s signature.

The mixed precision of fastl2lir <= 0.7 (``dtype='float32', solve_dtype='float64'``: its float64 bias column
made the Gram and the solves float64) is referenced by fastl2lir 0.7 itself, installed apart from the
current version by ``make install`` (:func:`legacy_fastl2lir`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bhscore.errors import UserError
from bhscore.ridge.backend import resolve_dtype
from bhscore.ridge.inputs import InputMatrix
from bhscore.ridge.result import RidgeFit


def fit_reference(
    X,
    Y,
    alpha: float = 1.0,
    n_feat: int = 0,
    dtype="float64",
    *,
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
    """Fit with the reference implementation, PyPI ``fastl2lir`` 0.11 (for legacy runs and tests).

    Parameters
    ----------
    X : array_like of shape (n_samples, n_inputs), or InputMatrix (materialised first)
    Y : array_like of shape (n_samples, n_outputs), or (n_rows, n_outputs) with ``y_rows``
    alpha, n_feat, dtype : see :func:`bhscore.ridge.fit`
    device, mode, batch_size, chunk_size, budget, progress, exact_rows
        Accepted for :func:`bhscore.ridge.fit`'s signature and ignored: the reference computes on the CPU,
        on the row-expanded samples, with its own loop over outputs.
    y_rows : ndarray of shape (n_samples,) of int, optional
        The outputs of sample i are ``Y[y_rows[i]]`` (expanded before the fit).
    solve_dtype : {'float32', 'float64'}, optional
        ``'float64'`` with ``dtype='float32'``: fastl2lir 0.7's arithmetic, computed by fastl2lir 0.7
        (:func:`legacy_fastl2lir`); otherwise it must equal ``dtype``.

    Returns
    -------
    RidgeFit
        Dense weights (n_inputs, n_outputs), no selection record.
    """
    dt = resolve_dtype(dtype)
    package = package_for(dt, None if solve_dtype is None else resolve_dtype(solve_dtype))
    X = X.materialize() if isinstance(X, InputMatrix) else np.asarray(X)
    Y = np.asarray(Y)
    if y_rows is not None:
        Y = Y[np.asarray(y_rows, dtype=np.int64)]
    if Y.ndim == 1:
        Y = Y[:, None]
    with quiet(package):
        model = package.FastL2LiR().fit(X, Y, alpha=alpha, n_feat=n_feat, dtype=dt.type)
    return RidgeFit(coef=np.asarray(model.W), b=np.asarray(model.b), selection=None, n_inputs=X.shape[1])


@contextlib.contextmanager
def quiet(package) -> Iterator[None]:
    """Run a fastl2lir ``package`` without its per-output progress bar and its known warnings (0/0 in
    ``corrmat`` for constant outputs; numpy.matrix and per-element conversions)."""
    impl = sys.modules[f"{package.__name__}.fastl2lir"]
    real_tqdm = impl.tqdm
    impl.tqdm = lambda it, *a, **kw: it
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            yield
    finally:
        impl.tqdm = real_tqdm


#: Where ``make install`` puts fastl2lir 0.7 (outside the environment's site-packages, which hold 0.11);
#: ``$BHSCORE_FASTL2LIR_LEGACY`` overrides it.
LEGACY_ENV = "BHSCORE_FASTL2LIR_LEGACY"
LEGACY_VERSION = "0.7"


class LegacyReferenceMissing(UserError, ModuleNotFoundError):
    """fastl2lir 0.7 is not installed where :func:`legacy_fastl2lir_dir` says (one line for the CLI)."""


def legacy_fastl2lir_dir() -> Path:
    """The folder holding fastl2lir 0.7's package (``<dir>/fastl2lir/__init__.py``)."""
    env = os.environ.get(LEGACY_ENV)
    return Path(env) if env else Path(sys.prefix) / "reference" / f"fastl2lir-{LEGACY_VERSION}"


def legacy_fastl2lir():
    """fastl2lir 0.7 as the module ``fastl2lir_legacy`` (the current fastl2lir stays importable).

    Raises
    ------
    LegacyReferenceMissing
        Not installed (a ``ModuleNotFoundError``): the message gives the command that installs it.
    """
    name = "fastl2lir_legacy"
    if name in sys.modules:
        return sys.modules[name]
    init = legacy_fastl2lir_dir() / "fastl2lir" / "__init__.py"
    if not init.is_file():
        raise LegacyReferenceMissing(
            f"fastl2lir {LEGACY_VERSION} (the reference of dtype float32_mixed) is not installed at {init.parent}: "
            f"run `make install`, or `pip install --no-deps --target {legacy_fastl2lir_dir()} "
            f"fastl2lir=={LEGACY_VERSION}`"
        )
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with warnings.catch_warnings():  # its `from numpy.matlib import repmat`
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def package_for(dtype: np.dtype, solve_dtype: np.dtype | None):
    """The fastl2lir package whose arithmetic is (``dtype``, ``solve_dtype``)."""
    if solve_dtype is None or solve_dtype == dtype:
        import fastl2lir
        import fastl2lir.fastl2lir  # noqa: F401  (its module, whose progress bar is silenced)

        return fastl2lir
    if (dtype, solve_dtype) != (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"no fastl2lir computes in dtype {dtype} with solves in {solve_dtype}")
    return legacy_fastl2lir()
