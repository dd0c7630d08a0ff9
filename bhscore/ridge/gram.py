"""Gram mode: inputs prepared once (statistics and ``[X, 1]^T [X, 1]``), then many outputs fitted with them.

The correlations of all outputs come from one matrix product ``X_c^T Y_c`` which also yields ``X^T Y``; each
output's sub-Gram is gathered from the Gram and the sub-systems are solved in batches by Cholesky.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from bhscore.ridge import backend, selection
from bhscore.ridge.backend import (
    auto_batch,
    device_budget,
    resolve_device,
    resolve_dtype,
    to_torch,
    torch_dtype,
)
from bhscore.ridge.correlation import (
    ColumnStats,
    centred_product,
    column_stats,
    correlation_from_product,
    fastl2lir_order,
    rank_keys,
    resolve_constant,
    topk,
    weighted_column_stats,
)
from bhscore.ridge.inputs import Groups, InputMatrix, as_input, as_outputs, check_finite, host_array
from bhscore.ridge.result import RidgeFit
from bhscore.ridge.solve import (
    Bar,
    batches,
    gather_subgrams,
    run_batches,
    solve_spd,
    solve_spd_multi,
    torch_single_thread,
)

#: Inputs up to this count use Gram mode by default.
MAX_GRAM_INPUTS = 16384


def _bordered_gram(G: np.ndarray, colsum: np.ndarray, n: float, dtype: np.dtype) -> torch.Tensor:
    """The Gram of ``[X, 1]`` (m + 1, m + 1) from the Gram of X (m, m), its column sums (m,) and the number
    of samples."""
    Ga = np.empty((G.shape[0] + 1, G.shape[0] + 1), dtype=dtype)
    Ga[:-1, :-1] = G
    Ga[:-1, -1] = colsum
    Ga[-1, :-1] = colsum
    Ga[-1, -1] = n
    return torch.from_numpy(Ga)


class GramInputs:
    """Inputs prepared for many fits: statistics and the Gram ``[X, 1]^T [X, 1]``, computed once.

    In decoding the same ROI voxels (X) serve every layer of every DNN: prepare once, fit each layer's Y.

    Samples that repeat rows (each training image was shown several times) are handled by the per-image
    algebra unless ``exact_rows``: with r distinct rows F and counts c (n = sum c samples),
    ``X^T X = F^T diag(c) F``, ``X^T Y = F^T (S^T Y)`` (S^T Y: per-image sums of the outputs) and the
    correlations' means, variances and covariances are the same weighted sums, so the Gram and the
    correlations cost r / n of the row-expanded ones. Inputs repeat when X is an :class:`InputMatrix` with
    ``rows`` (encoding: features per image); outputs repeat when :meth:`fit` gets ``y_rows`` (decoding:
    features of the image shown in each sample). The selection stays fastl2lir's: near-ties within the
    rounding difference of the two arithmetics are decided by the row-expanded values (see
    :func:`bhscore.ridge.selection.refine`).

    Parameters
    ----------
    X : array_like of shape (n_samples, n_inputs), or InputMatrix
    dtype : {'float32', 'float64'}
    device : str or torch.device, optional
        ``None``: CUDA when available, else CPU.
    exact_rows : bool
        Always compute on the row-expanded samples (the arithmetic of fastl2lir; for checking).
    solve_dtype : {'float32', 'float64'}, optional
        Precision of the Gram, the right-hand sides and the solves (default: ``dtype``, which the selection
        and the stored weights always use). fastl2lir <= 0.7 called with dtype float32 appended a float64
        bias column, so it selected in float32 but built the Gram and solved in float64 from the
        float32-rounded inputs and outputs: ``dtype='float32', solve_dtype='float64'``.
    """

    def __init__(self, X, dtype="float64", device=None, exact_rows: bool = False, solve_dtype=None):
        self.dtype = resolve_dtype(dtype)
        self.solve_dtype = resolve_dtype(solve_dtype) if solve_dtype is not None else self.dtype
        self.mixed = self.solve_dtype != self.dtype
        # mixed precision: the inputs in solve_dtype (host; row-expanded X or distinct rows F), made with the
        # Gram and kept for the right-hand sides; and their per-group sums for repeated outputs
        self._X_solve: np.ndarray | None = None
        self._xs_solve: tuple[np.ndarray, np.ndarray] | None = None
        self.device = resolve_device(device)
        self.exact_rows = bool(exact_rows)
        self.src = as_input(X, self.dtype)  # row-expanded view: exact recomputations, plain ridge
        self.n, self.n_inputs = self.src.shape
        if self.n < 2:
            raise ValueError(f"need at least 2 samples, got {self.n}")
        self.groups: Groups | None = None
        if self.src.rows is not None and not self.exact_rows:
            groups = Groups.from_rows(self.src.rows)
            if groups.worthwhile:
                self.groups = groups
        self._x_sums: tuple[np.ndarray, object] | None = None  # (inverse, per-group sums of centred X)
        self.X = None
        if self.groups is None:
            self._init_expanded()
        else:
            self._init_per_image()
        self._input_offset = selection.input_offset(self.stats)

    def _init_expanded(self) -> None:
        """The row-expanded X (n, n_inputs), its statistics and ``[X, 1]^T [X, 1]``."""
        X = self.src.materialize()
        check_finite(X, "X")
        self._X_host = X
        if self.mixed:
            self._X_solve = X.astype(self.solve_dtype)
        if self._xp_cpu:
            self.X = X
            self.stats = column_stats(X)
            Xs = self._X_solve if self.mixed else X
            G = Xs.T @ Xs  # numpy detects X.T @ X and uses syrk
            self.G = _bordered_gram(G, Xs.sum(axis=0), self.n, self.solve_dtype)
        else:
            self.X = to_torch(X, self.device)
            self.stats = column_stats(self.X)
            Xs = self.X.to(torch_dtype(self.solve_dtype))
            Xa = torch.cat([Xs, torch.ones((self.n, 1), dtype=Xs.dtype, device=self.device)], dim=1)
            self.G = Xa.T @ Xa

    def _init_per_image(self) -> None:
        """Distinct rows F (r, n_inputs), weighted statistics and ``[F, 1]^T diag(c) [F, 1]``."""
        g = self.groups
        img = InputMatrix(self.src.data, g.source_rows, self.src.center, self.src.scale, self.dtype)
        F = img.materialize()
        check_finite(F, "X")
        c = g.counts.astype(self.dtype)
        # [F, 1]^T diag(c) [F, 1] = Fw^T Fw with Fw = diag(sqrt(c)) [F, 1], in the solve's precision
        cs = g.counts.astype(self.solve_dtype)
        Fs, w = F.astype(self.solve_dtype, copy=False), np.sqrt(cs)
        if self.mixed:
            self._X_solve = Fs
        if self._xp_cpu:
            self.F = F
            self.counts = c
            self.stats, var0 = weighted_column_stats(F, c, self.n)
            Fw = Fs * w[:, None]
            self.G = _bordered_gram(Fw.T @ Fw, cs @ Fs, self.n, self.solve_dtype)  # syrk
        else:
            self.F = to_torch(F, self.device)
            self.counts = to_torch(c, self.device)
            self.stats, var0 = weighted_column_stats(self.F, self.counts, self.n)
            wt = to_torch(w, self.device)[:, None]
            Fwa = torch.cat([to_torch(Fs, self.device) * wt, wt], dim=1)
            self.G = Fwa.T @ Fwa

        def exact_var(idx: np.ndarray) -> np.ndarray:
            cols = selection.pad_index(idx, 2, self.n_inputs)  # a single column would be summed pairwise
            return np.var(self.src.take(cols), axis=0)[np.searchsorted(cols, idx)]

        resolve_constant(self.stats, var0, exact_var)

    @property
    def _xp_cpu(self) -> bool:
        return backend.numpy_path(self.device)

    @property
    def per_image(self) -> bool:
        """Whether the inputs are handled per distinct row."""
        return self.groups is not None

    def fit(
        self,
        Y,
        alpha: float = 1.0,
        n_feat: int = 0,
        batch_size: int | None = None,
        budget: int | None = None,
        progress: bool = False,
        y_rows: np.ndarray | None = None,
    ) -> RidgeFit:
        """Fit every output column of ``Y``; see :func:`bhscore.ridge.fit`.

        Parameters
        ----------
        Y : array_like of shape (n_samples, n_outputs), or (n_rows, n_outputs) with ``y_rows``
        y_rows : ndarray of shape (n_samples,) of int, optional
            The outputs of sample i are ``Y[y_rows[i]]`` (decoding: the features of the image shown).
        """
        budget = device_budget(budget, self.device)
        Y, y_groups = self._outputs(Y, y_rows)
        if n_feat == 0 or n_feat >= self.n_inputs:
            return self._fit_plain(Y if y_groups is None else y_groups.expand(Y), alpha)
        return self._fit_selected(Y, y_groups, alpha, int(n_feat), batch_size, budget, progress)

    def _outputs(self, Y, y_rows: np.ndarray | None) -> tuple[np.ndarray, Groups | None]:
        """The outputs to fit: their distinct rows (r, q) and groups when they repeat enough and the inputs
        are not per image, else the row-expanded (n, q) and None."""
        y_groups = None
        if y_rows is not None:
            y_rows = np.asarray(y_rows, dtype=np.int64)
            if y_rows.shape != (self.n,):
                raise ValueError(
                    f"y_rows must have one entry per sample ({self.n}), got shape {y_rows.shape}"
                )
            Y = host_array(Y)
            Y = Y[:, None] if Y.ndim == 1 else Y
            y_groups = Groups.from_rows(y_rows)
            if self.per_image or self.exact_rows or not y_groups.worthwhile:
                Y, y_groups = Y[y_rows], None
            else:
                Y = as_outputs(Y[y_groups.source_rows], y_groups.n_groups, self.dtype)
        if y_groups is None:
            Y = as_outputs(Y, self.n, self.dtype)
        return Y, y_groups

    def _fit_selected(
        self, Y: np.ndarray, y_groups: Groups | None, alpha: float, k: int, batch_size, budget: int, progress
    ) -> RidgeFit:
        """Per block of outputs: the selection, then the batched solves of the sub-Gram systems."""
        q, m = Y.shape[1], self.n_inputs
        block = auto_batch(m * 8 * 4, budget, lo=1, hi=q)  # outputs per block: P, C, keys (m x block) in f64
        coef = np.empty((q, k), dtype=self.dtype)
        sel = np.empty((q, k), dtype=np.int64)
        b = np.empty((1, q), dtype=self.dtype)
        self.selection_counts = {"clear": 0, "band": 0, "full": 0}
        # seconds: per-group sums of the inputs (once per grouping, cached), correlations + selection, solves
        self.timings = {"group_sums": 0.0, "select": 0.0, "solve": 0.0}
        t_start = time.perf_counter()
        if y_groups is not None:
            self._centred_input_sums(y_groups)
            self.timings["group_sums"] = time.perf_counter() - t_start
        bar = Bar(q, "fastl2lir outputs", progress)
        with torch_single_thread(self.device) as n_workers:
            if batch_size is None:
                batch_size = self._batch_size(k, q, n_workers, budget)
            for a, z in batches(q, block):
                t0 = time.perf_counter()
                # (B, k) ascending, (m + 1, B)
                sel_b, XtY = self._select_block(Y[:, a:z], k, y_groups, budget)
                if self.mixed:  # the right-hand sides in the solve's precision, from the dtype-rounded values
                    XtY = self._rhs_in_solve_dtype(Y[:, a:z], y_groups)
                sel[a:z] = sel_b.cpu().numpy()
                self.timings["select"] += time.perf_counter() - t0
                self._solve_block(a, sel_b, XtY, alpha, (coef, b), batch_size, n_workers, bar)
        bar.close()
        t = self.timings
        t["solve"] = time.perf_counter() - t_start - t["select"] - t["group_sums"]
        info = {"per_image": self.per_image or y_groups is not None, **self.timings, **self.selection_counts}
        return RidgeFit(coef=coef, b=b, selection=sel, n_inputs=m, info=info)

    def _batch_size(self, k: int, q: int, n_workers: int, budget: int) -> int:
        """Outputs solved together: sub-Grams within half the budget, a few batches per worker."""
        per_output = (k + 1) ** 2 * self.solve_dtype.itemsize * 3 * n_workers
        batch_size = auto_batch(per_output, budget // 2, lo=1, hi=128 if self._xp_cpu else 2048)
        return max(1, min(batch_size, -(-q // (4 * n_workers))))

    def _select_block(self, Y: np.ndarray, k: int, y_groups: Groups | None, budget: int):
        """Selected inputs (B, k) ascending and ``[X, 1]^T Y`` (n_inputs + 1, B) of a block of outputs."""
        if y_groups is not None:
            return self._select_grouped_outputs(Y, k, y_groups, budget)
        if self.per_image:
            return self._select_grouped_inputs(Y, k, budget)
        return self._select(Y, k)

    def _solve_block(
        self, a: int, sel_b, XtY, alpha: float, out, batch_size: int, n_workers: int, bar
    ) -> None:
        """Solve the outputs ``a .. a + B`` from their selections ``sel_b`` (B, k) and ``XtY`` (m + 1, B) into
        ``out = (coef (q, k), b (1, q))``, in batches of ``batch_size`` on ``n_workers`` threads."""
        coef, b = out
        B, k = sel_b.shape
        bias = torch.full((B, 1), self.n_inputs, dtype=torch.int64, device=self.device)
        idx_all = torch.cat([sel_b, bias], dim=1)  # (B, k + 1), bias last

        def work(c0: int, c1: int) -> int:
            idx = idx_all[c0:c1]
            Gs = gather_subgrams(self.G, idx)
            Gs.diagonal(dim1=-2, dim2=-1).add_(alpha)
            r = torch.gather(XtY[:, c0:c1].T, 1, idx)  # (B, k + 1)
            w = solve_spd(Gs, r).cpu().numpy()
            coef[a + c0 : a + c1] = w[:, :k]
            b[0, a + c0 : a + c1] = w[:, k]
            return c1 - c0

        run_batches(B, batch_size, work, n_workers, bar, flops=B * (k + 1) ** 3 / 3)

    def _rhs_in_solve_dtype(self, Y: np.ndarray, y_groups: Groups | None) -> torch.Tensor:
        """``[X, 1]^T Y`` (n_inputs + 1, B) in ``solve_dtype`` for a block of outputs Y (as :meth:`_select_block`
        gets them: distinct rows with ``y_groups``, else per sample), from the ``dtype``-rounded values.

        Per image the sums are regrouped exactly as the Gram's: ``F^T (S^T Y)`` for repeated inputs,
        ``(S^T X)^T G`` for repeated outputs (the bias row: ``c^T G``).
        """
        Ys = Y.astype(self.solve_dtype)
        if y_groups is not None:  # the inputs are row-expanded here
            if self._xs_solve is None or not np.array_equal(self._xs_solve[0], y_groups.inverse):
                self._xs_solve = (y_groups.inverse.copy(), y_groups.sum(self._X_solve))  # (r, m), per grouping
            XS = self._xs_solve[1]
            rhs = np.vstack([XS.T @ Ys, y_groups.counts.astype(self.solve_dtype) @ Ys])
        elif self.per_image:
            rhs = np.vstack([self._X_solve.T @ self.groups.sum(Ys), Ys.sum(axis=0)])
        else:
            rhs = np.vstack([self._X_solve.T @ Ys, Ys.sum(axis=0)])
        return to_torch(rhs, self.device)

    def _inputs_times_outputs(self, P, y_mean, bias) -> torch.Tensor:
        """``[X, 1]^T Y`` (n_inputs + 1, B) from the centred product P = X_c^T Y_c (n_inputs, B), the outputs'
        means (B,) and their column sums ``bias`` (the last row; numpy (B,) or tensor (1, B))."""
        if isinstance(P, np.ndarray):
            XtY = np.empty((self.n_inputs + 1, P.shape[1]), dtype=self.dtype)
            XtY[:-1] = P + self.n * np.outer(self.stats.mean, y_mean)
            XtY[-1] = bias
            return torch.from_numpy(XtY)
        return torch.cat([P + self.n * torch.outer(self.stats.mean, y_mean), bias], dim=0)

    def _select(self, Y: np.ndarray, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Selected inputs (B, k) ascending and ``[X, 1]^T Y`` (n_inputs + 1, B) for a block of outputs."""
        Yd = Y if self._xp_cpu else to_torch(Y, self.device)
        ys = column_stats(Yd, with_const=False)
        P = centred_product(self.X, self.stats, Yd - ys.mean)  # (m, B)
        C = correlation_from_product(P, self.n, self.stats, ys)
        bias = Y.sum(axis=0) if self._xp_cpu else Yd.sum(dim=0, keepdim=True)
        XtY = self._inputs_times_outputs(P, ys.mean, bias)
        keys = rank_keys(C)
        _, idx, nxt = topk(keys, k)
        kth = keys.gather(1, idx[:, -1:]).squeeze(1)
        tied = torch.nonzero(nxt == kth).flatten().tolist()
        if tied:
            Cn = C if isinstance(C, np.ndarray) else C.cpu().numpy()
            for j in tied:
                idx[j] = torch.from_numpy(fastl2lir_order(np.abs(Cn[:, j]), k)).to(idx.device)
        return torch.sort(idx, dim=1).values, XtY

    def _finish_selection(
        self, C, XtY, k: int, ys: ColumnStats, exact_x, exact_y, full
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image correlations C (n_inputs, B) -> fastl2lir's selection (B, k) ascending, and XtY."""
        keys = rank_keys(C)
        K = min(self.n_inputs, k + selection.BAND_EXTRA)
        vals, idx, nxt = topk(keys, K)
        bound = selection.rounding_bound(self.dtype, self.n, self._input_offset, selection.offset_ratio(ys))
        sel, counts = selection.refine(
            vals, idx, nxt, k, bound, exact_x, exact_y, full, self.n_inputs, C.shape[1]
        )
        for key, v in counts.items():
            self.selection_counts[key] += v
        return torch.sort(torch.from_numpy(sel).to(self.device), dim=1).values, XtY

    def _full_chunk(self, budget: int, n_outputs: int) -> int:
        per_column = 3 * self.n * self.dtype.itemsize + 4 * n_outputs * 8
        return auto_batch(per_column, budget, lo=2, hi=self.n_inputs)

    def _select_grouped_inputs(self, Y: np.ndarray, k: int, budget: int) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`_select`, with the inputs per distinct row: ``(F - mean)^T (S^T Y_c)``."""
        cpu = self._xp_cpu
        ys = column_stats(Y, with_const=False)  # the outputs are not repeated: fastl2lir's own statistics
        S = self.groups.sum(Y - ys.mean)  # (r, B) per-image sums of the centred outputs
        ysd = ys if cpu else ys.to_torch(self.device)
        P = centred_product(self.F, self.stats, S if cpu else to_torch(S, self.device))  # (m, B)
        C = correlation_from_product(P, self.n, self.stats, ysd)
        bias = Y.sum(axis=0) if cpu else to_torch(Y.sum(axis=0, keepdims=True), self.device)
        XtY = self._inputs_times_outputs(P, ysd.mean, bias)
        chunk = self._full_chunk(budget, Y.shape[1])
        exact_y = selection.exact_columns(Y, ys)
        return self._finish_selection(
            C, XtY, k, ys,
            exact_x=lambda U: (self.src.take(U), None),
            exact_y=exact_y,
            full=lambda J: selection.whole_column_selection(self.src, exact_y, J, Y.shape[1], k, chunk),
        )  # fmt: skip

    def _select_grouped_outputs(
        self, G: np.ndarray, k: int, yg: Groups, budget: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`_select`, with the outputs per distinct row G (r, B): ``(S^T X_c)^T (G - mean)``."""
        cpu = self._xp_cpu
        c = yg.counts.astype(self.dtype)
        ys, _ = weighted_column_stats(G, c, self.n, with_const=False)
        Gc = G - ys.mean
        XS = self._centred_input_sums(yg)  # (r, m)
        ysd = ys if cpu else ys.to_torch(self.device)
        P = XS.T @ (Gc if cpu else to_torch(Gc, self.device))  # (m, B)
        C = correlation_from_product(P, self.n, self.stats, ysd)
        bias = c @ G if cpu else to_torch((c @ G)[None, :], self.device)
        XtY = self._inputs_times_outputs(P, ysd.mean, bias)
        X = self._X_host
        chunk = self._full_chunk(budget, G.shape[1])
        expanded = {}

        def exact_y(J: np.ndarray) -> tuple[np.ndarray, ColumnStats]:  # fastl2lir's statistics: whole block
            if "ys" not in expanded:
                expanded["ys"] = column_stats(yg.expand(G), with_const=False)
            ye = expanded["ys"]
            return yg.expand(np.take(G, J, axis=1)), ColumnStats(ye.mean[J], ye.std[J], None)

        whole = InputMatrix(X, dtype=self.dtype)
        return self._finish_selection(
            C, XtY, k, ys,
            exact_x=lambda U: (np.take(X, U, axis=1), self._host_stats(U)),
            exact_y=exact_y,
            full=lambda J: selection.whole_column_selection(whole, exact_y, J, G.shape[1], k, chunk),
        )  # fmt: skip

    def _host_stats(self, idx: np.ndarray) -> ColumnStats | None:
        """numpy's statistics of the inputs ``idx`` (those of the row-expanded X); None on a GPU (its own
        statistics may differ from numpy's in the last bit: recompute)."""
        if not self._xp_cpu:
            return None
        st = self.stats
        return ColumnStats(st.mean[idx], st.std[idx], st.const[idx])

    def _centred_input_sums(self, yg: Groups):
        """Per-group sums of the centred inputs, ``S^T (X - mean)`` (r, n_inputs), cached per grouping."""
        if self._x_sums is None or not np.array_equal(self._x_sums[0], yg.inverse):
            mean = self.stats.mean if self._xp_cpu else self.stats.mean.cpu().numpy()
            XS = yg.sum(self._X_host - mean)
            self._x_sums = (yg.inverse.copy(), XS if self._xp_cpu else to_torch(XS, self.device))
        return self._x_sums[1]

    def _fit_plain(self, Y: np.ndarray, alpha: float) -> RidgeFit:
        """No selection: ridge on ``[X, 1]`` with alpha on the whole diagonal (primal or dual form)."""
        n, m = self.n, self.n_inputs
        Yt = to_torch(Y, self.device)
        X = self.X if self.X is not None else to_torch(self.src.materialize(), self.device)
        Xt = X if isinstance(X, torch.Tensor) else torch.from_numpy(X)
        if n > m + 1:  # primal, (m + 1) x (m + 1)
            A = self.G.clone() if not self.mixed else self._plain_gram(Xt)
            A.diagonal().add_(alpha)
            R = torch.cat([Xt.T @ Yt, Yt.sum(dim=0, keepdim=True)], dim=0)
            Wb = solve_spd_multi(A, R)
        else:  # dual, n x n
            K = Xt @ Xt.T + 1.0
            K.diagonal().add_(alpha)
            Z = solve_spd_multi(K, Yt)
            Wb = torch.cat([Xt.T @ Z, Z.sum(dim=0, keepdim=True)], dim=0)
        Wb = Wb.cpu().numpy()
        return RidgeFit(coef=np.ascontiguousarray(Wb[:-1]), b=Wb[-1:].copy(), selection=None, n_inputs=m)

    def _plain_gram(self, Xt: torch.Tensor) -> torch.Tensor:
        """``[X, 1]^T [X, 1]`` in ``dtype`` (no selection: fastl2lir's bias column has the fit's dtype there)."""
        if self._xp_cpu:
            X = Xt.numpy()
            return _bordered_gram(X.T @ X, X.sum(axis=0), self.n, self.dtype)
        Xa = torch.cat([Xt, torch.ones((self.n, 1), dtype=Xt.dtype, device=self.device)], dim=1)
        return Xa.T @ Xa
