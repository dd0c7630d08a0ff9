"""The FastL2LiR estimator (per-output input selection + L2-regularised regression), batched, CPU or CUDA.

The estimator (``fastl2lir`` 0.11, ``FastL2LiR().fit(X, Y, alpha, n_feat)``), for each output column y of Y:

1. C = Pearson correlation (ddof=1) between every input column and y; inputs whose variance (ddof=0) is below
   ``1e-8`` get C = 0.
2. S = the ``n_feat`` inputs with the largest \\|C\\|, then a column of ones (the bias) appended last.
3. Solve ``(X_S^T X_S + alpha I) w = X_S^T y``; alpha sits on the *whole* diagonal, the bias entry included.
   Weights of unselected inputs are 0.

When ``n_feat`` is 0 or ``>= n_inputs`` there is no selection: the plain ridge on ``[X, 1]`` is solved, in the
primal form when there are more samples than inputs + 1 and in the dual form otherwise (as fastl2lir does).

How this implementation gets the same answer faster
---------------------------------------------------
- *Gram mode* (inputs fit a Gram matrix, e.g. decoding from <= ~16k voxels): ``[X, 1]^T [X, 1]`` is computed
  once (and can be reused for many Y, see :class:`GramInputs`); the correlations of all outputs come from
  one matrix product ``X_c^T Y_c`` which also yields ``X^T Y``; each output's sub-Gram is gathered from the
  Gram and the sub-systems are solved in batches by Cholesky (never batched ``torch.linalg.solve``).
- *Wide mode* (e.g. encoding from all ~300k units of a layer): the n_inputs x n_inputs Gram is never formed.
  Inputs are streamed in column chunks (from an array, a ``numpy.memmap`` of the feature cache, or a
  :class:`InputMatrix` that z-scores and expands rows on the fly); correlations and a running top-k are
  computed per chunk; the sub-Grams are built from the selected columns only, a batch of outputs at a time.
  Peak memory is the input (or only the page cache, if memory-mapped) plus a working set bounded by
  ``batch_size`` and ``chunk_size``.
- *Per image* (both modes): the training samples repeat 1200 images 5 times. When the inputs repeat
  (an :class:`InputMatrix` with ``rows``: encoding) or the outputs do (``y_rows``: decoding), the statistics,
  correlations, Gram and sub-Grams are weighted sums over the distinct rows (:class:`GramInputs`,
  :func:`~bhscore.ridge.wide.wide_fit_per_image`): ~5x fewer operations and 5x less data streamed. The
  selection stays fastl2lir's (:func:`~bhscore.ridge.selection.refine`); ``exact_rows=True`` computes on the
  row-expanded samples.

Selection and ties
------------------
On CPU the correlation matrix is computed with exactly fastl2lir's numpy operations, so it is bitwise equal
to fastl2lir's in Gram mode and the selected sets are identical. Selection keeps the ``n_feat`` largest
\\|C\\| (NaN, from a constant output, counts as the largest, as in numpy's sort). Exact ties at the selection
boundary (constant inputs, C = 0; constant outputs, C = NaN; duplicated columns) are resolved for the affected
outputs only by fastl2lir's own rule, ``np.argsort(|C|)[::-1][:n_feat]`` evaluated with the same numpy on the
same values: fastl2lir's order among tied values is whatever numpy's (SIMD, unstable) sort produces, so this
is the only way to agree with it. In wide mode chunked products can differ from the unchunked ones in the
last bit (a near-tie within rounding may then select the other input); the tied outputs' full \\|C\\| rows
are recomputed in a second pass. On CUDA, correlations come from the GPU's own products; near-ties within
rounding can differ from fastl2lir in float32.

Per image, the correlations are computed in another order than fastl2lir's, so they differ in the last
bits; outputs whose n_feat-th and next \\|C\\| are closer than a bound on that difference have the inputs
near the boundary recomputed on the row-expanded samples with fastl2lir's numpy operations (on the CPU, also
when the rest runs on a GPU), and exact ties go through the argsort rule on the whole recomputed column
(:func:`~bhscore.ridge.selection.refine`). The recomputation uses BLAS products of other shapes than
fastl2lir's single product; on this OpenBLAS such products give bitwise the same float32 elements (checked
for >= 128 inputs and >= 8 outputs, hence the padding), float64 ones can differ in the last bit.

Modules
-------
``backend`` (device, dtype, numpy or torch, working-set sizes), ``inputs`` (:class:`InputMatrix`,
:class:`Groups`), ``correlation`` (column statistics, Pearson r, top-k), ``selection`` (fastl2lir's selection
from per-image or chunked correlations), ``solve`` (batched Cholesky solves, threads), ``result``
(:class:`RidgeFit`), ``gram`` (:class:`GramInputs`), ``wide`` (wide mode), ``reference``
(:func:`fit_reference`), ``api`` (:func:`fit`, :data:`SOLVERS`, :class:`FastL2LiR`).

Examples
--------
>>> import numpy as np
>>> from bhscore.ridge import fit
>>> rng = np.random.default_rng(0)
>>> X, Y = rng.standard_normal((200, 50)), rng.standard_normal((200, 3))
>>> res = fit(X, Y, alpha=10.0, n_feat=20)
>>> res.selection.shape, res.W.shape, res.b.shape
((3, 20), (50, 3), (1, 3))
"""

from bhscore.ridge.api import SOLVERS, FastL2LiR, Solver, fit, get_solver
from bhscore.ridge.backend import DEFAULT_BUDGET, resolve_device, resolve_dtype
from bhscore.ridge.correlation import VAR_THRESHOLD
from bhscore.ridge.gram import MAX_GRAM_INPUTS, GramInputs
from bhscore.ridge.inputs import MAX_DISTINCT_FRACTION, Groups, InputMatrix, as_input, distinct_rows
from bhscore.ridge.reference import fit_reference
from bhscore.ridge.result import RidgeFit
from bhscore.ridge.selection import BAND_EXTRA
from bhscore.ridge.solve import SMALL_FLOPS

__all__ = [
    "BAND_EXTRA",
    "DEFAULT_BUDGET",
    "MAX_DISTINCT_FRACTION",
    "MAX_GRAM_INPUTS",
    "SMALL_FLOPS",
    "SOLVERS",
    "VAR_THRESHOLD",
    "FastL2LiR",
    "GramInputs",
    "Groups",
    "InputMatrix",
    "RidgeFit",
    "Solver",
    "as_input",
    "distinct_rows",
    "fit",
    "fit_reference",
    "get_solver",
    "resolve_device",
    "resolve_dtype",
]
