"""Figure tables (bhscore.figures) checked against independent computations, and every notebook executed."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys

import h5py
import nbformat
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bhscore import figures
from bhscore.cli import main as cli_main
from bhscore.errors import UserError
from bhscore.score import (
    COMPONENTS,
    AccuracyTree,
    layer_subsets,
    mean_accuracy_profile,
    score_dnn,
    score_table,
)
from bhscore.settings import load_settings
from bhscore.simulate import simulate_accuracies

ROIS = ["V1", "V2", "V3", "V4", "HVC"]
SUBJECTS = ["sub-01", "sub-02", "sub-03"]
# four DNNs of different depths; one without ImageNet top-1 (left out of Figure 3B); a layer named 'NA' (which a
# careless CSV reader turns into NaN)
DNNS = {
    "Alpha": (["conv1_abs", "c2", "c3", "c4", "c5", "fc6", "fc7"], 57.7),
    "Beta": (["conv1_abs", "b2", "NA", "b4", "b5", "b6"], 71.5),
    "Gamma": (["conv1_abs"] + [f"g{j}" for j in range(2, 10)], 76.0),
    "Delta": (["conv1_abs", "d2", "d3", "d4", "d5"], None),
}
N_TEST = 50


def write_settings(root, n_bootstrap=50, **score) -> str:
    dnns = {}
    for name, (layers, top1) in DNNS.items():
        dnns[name] = {"dir": f"sim/{name}", "layers": layers}
        if top1 is not None:
            dnns[name]["imagenet_top1"] = top1
    d = {
        "data_root": ".",
        "subjects": SUBJECTS,
        "rois": ROIS,
        "analysis": {"score": {"n_bootstrap": n_bootstrap, "n_draws": 40, **score}},
        "dnns": dnns,
    }
    path = root / "settings.json"
    path.write_text(json.dumps(d, indent=1))
    return str(path)


def simulate(root):
    """Settings + accuracy trees; strengths chosen so that the DNNs' scores differ clearly."""
    path = write_settings(root)
    s = load_settings(path)
    simulate_accuracies(
        s, seed=3, n_units=60, n_voxels=80, strengths={"Alpha": 1.0, "Beta": 0.7, "Gamma": 0.4, "Delta": 0.0}
    )
    return s


@pytest.fixture(scope="session")
def fig_env(tmp_path_factory):
    """Simulated accuracies, settings and the figure tables written once (shared by every test here)."""
    root = tmp_path_factory.mktemp("figsim")
    settings = simulate(root)
    out = root / "figures"
    tables = figures.compute_tables(settings, progress=False)
    figures.write_tables(tables, out)
    return {"root": root, "settings": settings, "out": out, "tables": tables}


_HOME_VARS = [
    ("HOME", "home"),
    ("JUPYTER_RUNTIME_DIR", "jrt"),
    ("JUPYTER_DATA_DIR", "jdata"),
    ("JUPYTER_CONFIG_DIR", "jconf"),
    ("IPYTHONDIR", "ipy"),
    ("MPLCONFIGDIR", "mpl"),
]


def _home_env(base) -> dict[str, str]:
    """Kernels and matplotlib write nothing into the user's home: their directories under ``base``."""
    env = {}
    for var, sub in _HOME_VARS:
        (base / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(base / sub)
    return env


@pytest.fixture
def jupyter_home(tmp_path, monkeypatch):
    for var, value in _home_env(tmp_path / "env").items():
        monkeypatch.setenv(var, value)
    return tmp_path


@pytest.fixture(scope="session")
def executed(fig_env, tmp_path_factory):
    """Every notebook run once through `bhscore figure NAME`, all at once (one process each, 2 cores used).

    Returns
    -------
    dict
        name -> (return code, stderr); the figures are in ``fig_env["out"]``.
    """
    base = tmp_path_factory.mktemp("nbrun")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BHSCORE_")}
    env.update(_home_env(base), TQDM_DISABLE="1")
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "bhscore.commands.figures", "figure", name]
            + ["--settings", str(fig_env["settings"].source), "--out", str(fig_env["out"])],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in figures.figure_names()
    }
    return {name: (p.wait(timeout=300), p.stderr.read()) for name, p in procs.items()}


# -------------------------------------------------------------------------------------------------
# independent computations from the raw files
# -------------------------------------------------------------------------------------------------


def raw(root, kind, dnn, layer, subject, roi) -> np.ndarray:
    """One accuracy vector read with h5py directly (MAT v7.3 stores (1, n) as (n, 1))."""
    path = root / "published" / f"{kind}_accuracy" / "ImageNetTest" / f"sim/{dnn}" / layer / subject / roi / "accuracy.mat"
    with h5py.File(path, "r") as f:
        return np.asarray(f["accuracy"], dtype=np.float64).ravel()


def decoding_level(root, dnn, layer) -> np.ndarray:
    """(n_rois, n_units x n_subjects)."""
    return np.vstack(
        [np.concatenate([raw(root, "decoding", dnn, layer, s, r) for s in SUBJECTS]) for r in ROIS]
    )


def encoding_level(root, dnn, roi) -> np.ndarray:
    """(n_layers, n_voxels x n_subjects) (80 voxels: the 1000-voxel subsample keeps all)."""
    layers = DNNS[dnn][0]
    return np.vstack(
        [np.concatenate([raw(root, "encoding", dnn, ly, s, roi) for s in SUBJECTS]) for ly in layers]
    )


def kept_top(level: np.ndarray, legacy: bool = True) -> np.ndarray:
    """Top row of the items that pass the filter, by the formulas of method.md."""
    acc = np.where(np.isnan(level), 0.0, level)
    best, top = acc.max(axis=0), acc.argmax(axis=0)
    r = np.clip(best, -0.999999, 0.999999)
    t = r * np.sqrt((N_TEST - 2) * (1 - r**2)) if legacy else r * np.sqrt((N_TEST - 2) / (1 - r**2))
    p = 2 * stats.t.sf(np.abs(t), N_TEST - 2)
    return top[(best > 0) & (p < 0.05)]


def pooled_spearman(tops: list[np.ndarray]) -> float:
    x = np.concatenate([np.full(len(t), i + 1) for i, t in enumerate(tops)])
    return float(stats.spearmanr(x, np.concatenate(tops)).statistic)


# -------------------------------------------------------------------------------------------------
# tables
# -------------------------------------------------------------------------------------------------


def test_score_table_equals_bhscore_score(fig_env):
    """bhscores.csv is the score table of bhscore.score (same numbers, columns, order), read back exactly."""
    expected = score_table(fig_env["settings"], progress=False)
    got = figures.read_tables(fig_env["out"]).scores
    assert list(got.columns) == list(expected.columns)
    assert list(got.dnn) == list(DNNS)
    num = expected.select_dtypes("number").columns
    np.testing.assert_allclose(got[num].to_numpy(float), expected[num].to_numpy(float), rtol=0, atol=1e-12)
    assert got.imagenet_top1.isna().tolist() == [False, False, False, True]


def test_scores_match_independent_spearman(fig_env):
    """Encoding: all layers pooled; decoding: mean over the same seeded subsets, Spearman by scipy."""
    root, scores = fig_env["root"], fig_env["tables"].scores.set_index("dnn")
    for dnn, (layers, _) in DNNS.items():
        enc = pooled_spearman([kept_top(encoding_level(root, dnn, r)) for r in ROIS])
        assert scores.at[dnn, "encoding"] == pytest.approx(enc, abs=1e-12)
        tops = [kept_top(decoding_level(root, dnn, ly)) for ly in layers]
        subsets = layer_subsets(len(layers), 5, 40, seed=0)
        dec = np.mean([pooled_spearman([tops[i] for i in sub]) for sub in subsets])
        assert scores.at[dnn, "decoding"] == pytest.approx(dec, abs=1e-12)
        assert scores.at[dnn, "averaged"] == pytest.approx((enc + dec) / 2, abs=1e-12)
        lo, hi = scores.at[dnn, "averaged_ci_low"], scores.at[dnn, "averaged_ci_high"]
        assert lo < hi
    # the planted strengths order the DNNs
    assert list(scores.sort_values("averaged", ascending=False).index) == ["Alpha", "Beta", "Gamma", "Delta"]


def test_top_roi_fractions_by_hand(fig_env):
    """Figure S1's table from raw accuracies with numpy: counts, fractions summing to 1, all layers."""
    root, fr = fig_env["root"], figures.read_tables(fig_env["out"]).top_roi_fractions
    assert len(fr) == sum(len(layers) for layers, _ in DNNS.values()) * len(ROIS)
    for dnn, (layers, _) in DNNS.items():
        d = fr[fr.dnn == dnn]
        assert list(d.drop_duplicates("layer_index").layer) == layers  # 'NA' survives the CSV round trip
        for j, layer in enumerate(layers):
            tops = kept_top(decoding_level(root, dnn, layer))
            counts = np.bincount(tops, minlength=len(ROIS))
            dl = d[d.layer_index == j].sort_values("roi_index")
            assert dl["count"].tolist() == counts.tolist()
            assert (dl.n_kept == counts.sum()).all() and (dl.n_items == 60 * len(SUBJECTS)).all()
            np.testing.assert_allclose(dl.fraction.to_numpy(), counts / counts.sum(), atol=1e-12)
        np.testing.assert_array_equal(
            d.pivot(index="layer_index", columns="roi_index", values="count").to_numpy(),
            score_dnn(fig_env["settings"], dnn, n_bootstrap=0).decoding_counts,
        )
    # the planted hierarchy: Alpha's first layer is mostly V1, its last mostly HVC
    a = fr[fr.dnn == "Alpha"]
    assert a[(a.layer_index == 0)].sort_values("fraction").roi.iloc[-1] == "V1"
    assert a[(a.layer_index == 6)].sort_values("fraction").roi.iloc[-1] == "HVC"


def test_accuracy_profiles_by_hand(fig_env):
    root, pr = fig_env["root"], figures.read_tables(fig_env["out"]).accuracy_profiles
    for dnn, (layers, _) in DNNS.items():
        m = (
            pr[pr.dnn == dnn]
            .pivot(index="layer_index", columns="roi_index", values="mean_accuracy")
            .to_numpy()
        )
        by_hand = np.stack([np.nanmean(decoding_level(root, dnn, ly), axis=1) for ly in layers])
        np.testing.assert_allclose(m, by_hand, atol=1e-9)
        levels = AccuracyTree(fig_env["settings"], dnn).decoding_levels()
        np.testing.assert_allclose(m, mean_accuracy_profile(levels), atol=1e-12)


def test_correlations_match_scipy(fig_env):
    t = figures.read_tables(fig_env["out"])
    s = t.scores
    with_top1 = s.dropna(subset=["imagenet_top1"])
    c = t.correlation("imagenet_top1", "averaged")
    ref = stats.spearmanr(with_top1.imagenet_top1, with_top1.averaged)
    assert c["n"] == 3
    assert c["rho"] == pytest.approx(ref.statistic) and c["p_value"] == pytest.approx(ref.pvalue)
    c = t.correlation("encoding", "decoding")
    assert c["n"] == 4 and c["rho"] == pytest.approx(stats.spearmanr(s.encoding, s.decoding).statistic)
    with pytest.raises(KeyError, match="no correlation"):
        t.correlation("decoding", "imagenet_top1")


def test_ranking_table(fig_env):
    rk = figures.read_tables(fig_env["out"]).ranking
    avg = rk[rk.component == "averaged"]
    assert list(avg.dnn) == ["Alpha", "Beta", "Gamma", "Delta"] and list(avg["rank"]) == [1, 2, 3, 4]
    assert (avg.score.diff().dropna() < 0).all()
    s = fig_env["tables"].scores.set_index("dnn")
    for _, r in rk.iterrows():
        assert r.score == pytest.approx(s.at[r.dnn, r.component])
        assert r.ci_low == pytest.approx(s.at[r.dnn, f"{r.component}_ci_low"])


def test_filter_comparison_by_hand(fig_env):
    """Corrected scores equal bhscore.score's; ranks by hand; legacy drops the strongest units."""
    settings, root = fig_env["settings"], fig_env["root"]
    f = figures.read_tables(fig_env["out"]).filter_comparison
    corrected = score_table(settings, p_method="corrected", n_bootstrap=0, progress=False).set_index("dnn")
    for comp in COMPONENTS:
        sub = f[(f.component == comp) & (f.p_method == "corrected")].set_index("dnn")
        np.testing.assert_allclose(
            sub.score.to_numpy(), corrected.loc[sub.index, comp].to_numpy(), atol=1e-12
        )
        order = sub.score.sort_values(ascending=False).index
        assert list(sub.loc[order, "rank"]) == list(range(1, len(DNNS) + 1))
    leg = f[(f.component == "decoding") & (f.p_method == "legacy")].set_index("dnn")
    cor = f[(f.component == "decoding") & (f.p_method == "corrected")].set_index("dnn")
    layers = DNNS["Alpha"][0]
    n_cor = sum(len(kept_top(decoding_level(root, "Alpha", ly), legacy=False)) for ly in layers)
    assert cor.at["Alpha", "n_kept"] == n_cor
    assert leg.at["Alpha", "n_kept"] == sum(len(kept_top(decoding_level(root, "Alpha", ly))) for ly in layers)


def test_tables_are_written_atomically_scores_last(fig_env, tmp_path):
    written = figures.write_tables(fig_env["tables"], tmp_path)
    assert written[-1] == tmp_path / "bhscores.csv"
    assert figures.tables_complete(tmp_path)
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]  # no temp files left
    (tmp_path / "tables" / "correlations.csv").unlink()
    assert not figures.tables_complete(tmp_path)
    with pytest.raises(FileNotFoundError, match="figure-tables"):
        figures.read_tables(tmp_path)


def test_load_tables_only_reads(fig_env, tmp_path):
    """The notebooks' loader never computes: missing tables are one error naming `make figure-tables`."""
    settings_path = fig_env["settings"].source
    figs = tmp_path / "figs"
    with pytest.raises(figures.MissingTablesError) as err:
        figures.load_tables(figs, settings_path=settings_path)
    msg = str(err.value)
    assert f"make figure-tables SETTINGS={settings_path} FIGURES={figs}" in msg
    assert "bhscores.csv" in msg and "tables/pairwise.csv" in msg
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, UserError)
    assert not figs.exists()  # nothing computed, nothing written
    # one table missing: named alone
    figures.write_tables(fig_env["tables"], figs)
    (figs / "tables" / "correlations.csv").unlink()
    with pytest.raises(figures.MissingTablesError, match=r"missing in .*: tables/correlations\.csv\n"):
        figures.load_tables(figs)
    # present tables are read; DNNs differing from the settings give a warning
    figures.write_tables(fig_env["tables"], figs)
    pd.testing.assert_frame_equal(figures.load_tables(figs, settings_path=settings_path).scores, fig_env["tables"].scores)
    other = tmp_path / "other.json"
    d = json.loads(open(settings_path).read())
    d["data_root"] = str(fig_env["root"])
    del d["dnns"]["Delta"]
    other.write_text(json.dumps(d))
    with pytest.warns(UserWarning, match="rebuild"):
        figures.load_tables(figs, settings_path=other)


def test_data_root_override(fig_env, tmp_path, monkeypatch):
    """load_settings(data_root=...) reads the accuracies there, whatever the settings say; no env var set."""
    monkeypatch.delenv("BHSCORE_DATA", raising=False)
    d = json.loads(open(fig_env["settings"].source).read())
    d["data_root"] = str(tmp_path / "nowhere")
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps(d))
    with pytest.raises(FileNotFoundError):
        figures.compute_tables(load_settings(moved), progress=False)
    monkeypatch.chdir(fig_env["root"].parent)
    settings = load_settings(moved, data_root=fig_env["root"].name)  # relative: resolved once, here
    assert settings.data_root == str(fig_env["root"].resolve())
    t = figures.compute_tables(settings, dnns=["Beta"], progress=False)
    assert list(t.scores.dnn) == ["Beta"] and os.environ.get("BHSCORE_DATA") is None
    # $BHSCORE_DATA still overrides the settings' data root (bhscore.paths)
    monkeypatch.setenv("BHSCORE_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError):
        figures.compute_tables(load_settings(moved, data_root=fig_env["root"]), dnns=["Beta"], progress=False)


def test_helpers():
    err = figures.error_bars([0.5, 0.2, 0.1], [0.4, 0.25, np.nan], [0.7, 0.3, np.nan])
    np.testing.assert_allclose(err, [[0.1, 0.0, 0.0], [0.2, 0.1, 0.0]])
    rho, p, n = figures.spearman([1, 2, np.nan, 4], [1, 3, 2, 2])
    assert n == 3 and rho == pytest.approx(stats.spearmanr([1, 2, 4], [1, 3, 2]).statistic)
    assert np.isnan(figures.spearman([1, 2], [2, 1])[0]) and np.isnan(
        figures.spearman([1, 1, 1], [1, 2, 3])[0]
    )
    assert figures.other_p_method("legacy") == "corrected"
    assert len(set(figures.roi_colors(ROIS).values())) == 5


# -------------------------------------------------------------------------------------------------
# notebooks
# -------------------------------------------------------------------------------------------------


def test_notebooks_are_clean_and_parameterised():
    """One notebook per figure in FIGURES; a tagged parameters cell; outputs stripped (as committed)."""
    names = figures.figure_names()
    assert names == sorted(figures.FIGURES)
    for name in names:
        nb = nbformat.read(figures.notebook_path(name), as_version=4)
        nbformat.validate(nb)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1
        for var in ("settings_path", "output_dir", "tables_dir"):
            assert f"{var} =" in tagged[0].source
        code = [c for c in nb.cells if c.cell_type == "code"]
        source = "".join(c.source for c in code)
        assert "data_root" not in source and "compute_tables" not in source  # notebooks only read tables
        assert "figures.load_tables(" in source
        assert all(not c.outputs and c.execution_count is None for c in code), f"{name}: outputs not stripped"
        assert f'NAME = "{name}"' in "".join(c.source for c in code)


def _page_count(pdf: bytes) -> int:
    return pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page>") + pdf.count(b"/Type /Page ")


@pytest.mark.parametrize("name", sorted(figures.FIGURES))
def test_notebook_executes(name, fig_env, executed):
    rc, err = executed[name]
    assert rc == 0, err
    out = fig_env["out"]
    nb_path = out / "notebooks" / f"{name}.ipynb"
    pdf, png = (out / f"{name}.pdf").read_bytes(), (out / f"{name}.png").read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 2000
    assert png.startswith(b"\x89PNG") and len(png) > 2000
    if name == "figS1_top_roi_histograms":
        assert _page_count(pdf) == len(DNNS)  # one page per DNN
    nb = nbformat.read(nb_path, as_version=4)
    assert nb.metadata.papermill["parameters"]["output_dir"] == str(out.resolve())
    assert all(not c.get("outputs") or c.outputs[-1].get("output_type") != "error" for c in nb.cells)
    assert not list(out.glob(f".{name}*")) and not (out / "notebooks" / f"{name}.failed.ipynb").exists()


def test_failing_notebook_is_kept_and_reported(fig_env, tmp_path, jupyter_home):
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        "settings_path = None\noutput_dir = None\ntables_dir = None"
    )
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("raise ValueError('boom')")]
    nbformat.write(nb, nbdir / "broken.ipynb")
    out = tmp_path / "out"
    with pytest.raises(UserError, match="ValueError: boom"):
        figures.run_notebook("broken", fig_env["settings"].source, out, notebook_dir=nbdir)
    assert (out / "notebooks" / "broken.failed.ipynb").is_file()
    assert not (out / "notebooks" / "broken.ipynb").exists()
    with pytest.raises(UserError, match="no notebook for figure 'nope'"):
        figures.notebook_path("nope", nbdir)


def test_notebook_without_tables_names_make_figure_tables(fig_env, tmp_path, jupyter_home):
    """A figure's notebook never computes the tables: without them it stops with the command that makes them."""
    out = tmp_path / "out"
    with pytest.raises(UserError, match="MissingTablesError: figure table") as err:
        figures.run_notebook("fig3b_imagenet", fig_env["settings"].source, out)
    assert f"make figure-tables SETTINGS={fig_env['settings'].source} FIGURES={out.resolve()}" in str(err.value)
    assert not (out / "bhscores.csv").exists() and (out / "notebooks" / "fig3b_imagenet.failed.ipynb").is_file()


# -------------------------------------------------------------------------------------------------
# command line
# -------------------------------------------------------------------------------------------------


def test_cli_figure_tables_check_and_inputs(fig_env, tmp_path, capsys):
    s = str(fig_env["settings"].source)
    assert cli_main(["figure-tables", "--settings", s, "--check"]) == 0
    assert cli_main(["figure-tables", "--settings", s, "--list-inputs"]) == 0
    listed = capsys.readouterr().out.split()
    n_files = 2 * sum(len(layers) for layers, _ in DNNS.values()) * len(SUBJECTS) * len(ROIS)
    assert len(listed) == n_files and all(os.path.isfile(p) for p in listed)

    # a tree without accuracies: --check says so (exit 3), --list-inputs lists nothing, computing fails clearly
    empty = tmp_path / "empty"
    empty.mkdir()
    path = write_settings(empty)
    assert cli_main(["figure-tables", "--settings", path, "--check"]) == 3
    err = capsys.readouterr().err
    assert f"{n_files} published accuracy file(s) missing" in err and "make download-accuracy" in err
    assert cli_main(["figure-tables", "--settings", path, "--list-inputs"]) == 0
    assert capsys.readouterr().out.strip() == ""
    assert cli_main(["figure-tables", "--settings", path, "--out", str(tmp_path / "f")]) == 2
    assert "missing" in capsys.readouterr().err and not (tmp_path / "f").exists()


def test_cli_figure_tables_writes(fig_env, tmp_path, capsys):
    out = tmp_path / "figs"
    assert cli_main(["figure-tables", "--settings", str(fig_env["settings"].source), "--out", str(out)]) == 0
    pd.testing.assert_frame_equal(figures.read_tables(out).scores, figures.read_tables(fig_env["out"]).scores)
    assert cli_main(["figure", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in figures.FIGURES)
    assert cli_main(["figure", "nope", "--out", str(out)]) == 2


def test_exact_layer_selection_consistent(fig_env, tmp_path):
    """With layer_selection 'exact' the decoding score is the mean over every subset (checked by hand)."""
    d = json.loads(open(fig_env["settings"].source).read())
    d["data_root"] = str(fig_env["root"])
    d["analysis"]["score"].update(layer_selection="exact", n_bootstrap=0)
    (tmp_path / "s.json").write_text(json.dumps(d))
    t = figures.compute_tables(load_settings(tmp_path / "s.json"), dnns=["Beta"], progress=False)
    layers = DNNS["Beta"][0]
    tops = [kept_top(decoding_level(fig_env["root"], "Beta", ly)) for ly in layers]
    subsets = [(0, *c, len(layers) - 1) for c in itertools.combinations(range(1, len(layers) - 1), 3)]
    exact = np.mean([pooled_spearman([tops[i] for i in s]) for s in subsets])
    assert t.scores.decoding.iloc[0] == pytest.approx(exact, abs=1e-12)
    assert np.isnan(t.scores.decoding_ci_low.iloc[0])  # no bootstrap


def test_strip_outputs(fig_env, executed, tmp_path):
    """`bhscore figure --strip-outputs` cleans a notebook that was run (as the committed ones must be)."""
    nb_path = tmp_path / "run.ipynb"
    shutil.copy(fig_env["out"] / "notebooks" / "fig3a_ranking.ipynb", nb_path)
    assert any(c.get("outputs") for c in nbformat.read(nb_path, as_version=4).cells)
    assert figures.strip_outputs(nb_path) is True
    nb = nbformat.read(nb_path, as_version=4)
    nbformat.validate(nb)
    assert all(not c.outputs and c.execution_count is None for c in nb.cells if c.cell_type == "code")
    assert "papermill" not in nb.metadata
    assert figures.strip_outputs(nb_path) is False
