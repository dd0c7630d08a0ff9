"""The reproduction check (bhscore.verify, `bhscore verify`) on a simulated tree whose 'published' scores are
computed independently here, from the raw files, with the formulas of method.md and the paper's literal code."""

from __future__ import annotations

import itertools
import json

import h5py
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bhscore import verify
from bhscore.cli import main as cli_main
from bhscore.errors import UserError
from bhscore.settings import REPO_ROOT, load_settings
from bhscore.simulate import simulate_accuracies

ROIS = ["V1", "V2", "V3", "V4", "HVC"]
SUBJECTS = ["sub-01", "sub-02", "sub-03"]
DNNS = {"Net-A": (6, 61.5), "Net-B": (7, 70.25), "Net-C": (5, 48.0)}
N_VOXELS = 1100  # > 1000: the paper's voxel subsample matters
N_TEST = 50


def settings_dict(root, **score) -> dict:
    return {
        "data_root": str(root),
        "subjects": SUBJECTS,
        "rois": ROIS,
        # the paper's score settings (defaults), exact layer subsets so that the check is deterministic
        "analysis": {"score": {"layer_selection": "exact", "n_bootstrap": 0, **score}},
        "dnns": {
            name: {
                "dir": f"v/{name}",
                "layers": ["conv1_abs"] + [f"l{j}" for j in range(1, n)],
                "imagenet_top1": top1,
            }
            for name, (n, top1) in DNNS.items()
        },
    }


def write_settings(path, root, **score) -> str:
    path.write_text(json.dumps(settings_dict(root, **score)))
    return str(path)


# ---------------------------------------------------------------------- independent BH score (the paper's way)


def raw(root, kind, dnn, layer, subject, roi) -> np.ndarray:
    path = root / "published" / f"{kind}_accuracy" / "ImageNetTest" / f"v/{dnn}" / layer / subject / roi / "accuracy.mat"
    with h5py.File(path, "r") as f:
        return np.asarray(f["accuracy"], dtype=np.float64).ravel()


def paper_subsample(acc: np.ndarray) -> np.ndarray:
    """``numpy.random.seed(0); numpy.random.choice(acc, 1000, replace=False)`` as in the original (global RNG)."""
    if acc.size <= 1000:
        return acc
    state = np.random.get_state()  # noqa: NPY002
    try:
        np.random.seed(0)  # noqa: NPY002
        return np.random.choice(acc, size=1000, replace=False)  # noqa: NPY002  (the paper's call)
    finally:
        np.random.set_state(state)  # noqa: NPY002


def top_kept(level: np.ndarray) -> np.ndarray:
    acc = level.copy()
    acc[np.isnan(acc)] = 0
    best, top = acc.max(axis=0), acc.argmax(axis=0)
    t = best * np.sqrt((N_TEST - 2) * (1 - best**2))  # the legacy formula of the published code
    p = 2 * stats.t.sf(np.abs(t), N_TEST - 2)
    return top[(best > 0) & (p < 0.05)]


def rho(tops) -> float:
    x = np.concatenate([np.full(len(t), i) for i, t in enumerate(tops)])
    return float(stats.spearmanr(x, np.concatenate(tops)).statistic)


def independent_scores(root) -> pd.DataFrame:
    rows = []
    for dnn, (n, top1) in DNNS.items():
        layers = ["conv1_abs"] + [f"l{j}" for j in range(1, n)]
        dec_tops = [
            top_kept(
                np.vstack(
                    [np.concatenate([raw(root, "decoding", dnn, ly, s, r) for s in SUBJECTS]) for r in ROIS]
                )
            )
            for ly in layers
        ]
        dec = np.mean(
            [
                rho([dec_tops[i] for i in (0, *mid, n - 1)])
                for mid in itertools.combinations(range(1, n - 1), 3)
            ]
        )
        enc_tops = [
            top_kept(
                np.vstack(
                    [
                        np.concatenate(
                            [paper_subsample(raw(root, "encoding", dnn, ly, s, r)) for s in SUBJECTS]
                        )
                        for ly in layers
                    ]
                )
            )
            for r in ROIS
        ]
        enc = rho(enc_tops)
        rows.append(
            {
                "dnn": dnn,
                "bhscore_decoding": dec,
                "bhscore_encoding": enc,
                "bhscore_averaged": (dec + enc) / 2,
                "imagenet_top1_percent": top1,
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def vtree(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    path = write_settings(root / "settings.json", root)
    simulate_accuracies(
        load_settings(path),
        seed=7,
        n_units=40,
        n_voxels=N_VOXELS,
        strengths={"Net-A": 0.9, "Net-B": 0.5, "Net-C": 0.2},
    )
    published = independent_scores(root)
    published.to_csv(root / "published.csv", index=False)
    return {"root": root, "settings": path, "published": published}


def run_verify(vtree, tmp_path, capsys, published: pd.DataFrame | None = None, extra=()) -> tuple[int, str]:
    pub = tmp_path / "pub.csv"
    (vtree["published"] if published is None else published).to_csv(pub, index=False)
    rc = cli_main(["verify", "--settings", vtree["settings"], "--published", str(pub), *extra])
    return rc, capsys.readouterr().out


# ---------------------------------------------------------------------- tests


def test_independent_reference_is_sane(vtree):
    pub = vtree["published"].set_index("dnn")
    assert pub.bhscore_encoding["Net-A"] > pub.bhscore_encoding["Net-B"] > pub.bhscore_encoding["Net-C"]
    assert pub.bhscore_decoding["Net-A"] > 0.5
    # the 1000-voxel subsample matters here: all voxels give other encoding scores
    from bhscore.score import score_table

    d = settings_dict(vtree["root"], encoding_voxel_subsample=None)
    (vtree["root"] / "all_voxels.json").write_text(json.dumps(d))
    all_vox = score_table(load_settings(vtree["root"] / "all_voxels.json"), progress=False).set_index("dnn")
    assert (all_vox.encoding - pub.bhscore_encoding).abs().min() > 1e-4


def test_pass_on_independent_values(vtree, tmp_path, capsys):
    rc, out = run_verify(vtree, tmp_path, capsys, extra=["-o", str(tmp_path / "cmp.csv")])
    assert rc == 0, out
    assert "PASS: 3 of 3 published DNNs" in out
    for dnn in DNNS:
        assert dnn in out
    cmp = pd.read_csv(tmp_path / "cmp.csv")
    assert (cmp.status == "ok").all()
    assert cmp.encoding_diff.abs().max() < 1e-9  # deterministic: the same number
    assert cmp.decoding_diff.abs().max() < 1e-9  # exact layer subsets on both sides


@pytest.mark.parametrize(
    ("column", "delta", "passes"),
    [
        ("bhscore_encoding", 2e-6, False),
        ("bhscore_encoding", 5e-7, True),
        ("bhscore_decoding", 0.014, True),  # within the original's run-to-run spread
        ("bhscore_decoding", -0.016, False),
        ("bhscore_averaged", 0.009, True),
        ("bhscore_averaged", 0.011, False),
        ("imagenet_top1_percent", 0.5, False),  # Figure 3B would use a wrong top-1
    ],
)
def test_perturbed_published_values(vtree, tmp_path, capsys, column, delta, passes):
    pub = vtree["published"].copy()
    pub.loc[pub.dnn == "Net-B", column] += delta
    rc, out = run_verify(vtree, tmp_path, capsys, pub)
    assert rc == (0 if passes else 1), out
    if not passes:
        assert "FAIL" in out and "Net-B:" in out
        lines = [ln for ln in out.splitlines() if ln.startswith("Net-")]
        assert [ln.split()[-1] for ln in lines] == ["ok", "FAIL", "ok"]


def test_missing_and_unpublished_dnns(vtree, tmp_path, capsys):
    pub = vtree["published"]
    extra = pd.concat(
        [
            pub,
            pd.DataFrame(
                [{"dnn": "Ghost", "bhscore_decoding": 0.1, "bhscore_encoding": 0.1, "bhscore_averaged": 0.1}]
            ),
        ]
    )
    rc, out = run_verify(vtree, tmp_path, capsys, extra)
    assert rc == 1 and "Ghost: published but not in the computed table" in out
    # a DNN of the settings that was not published: not computed, not checked
    rc, out = run_verify(vtree, tmp_path, capsys, pub[pub.dnn != "Net-C"])
    assert rc == 0 and "PASS: 2 of 2" in out and "Net-C" not in out
    # ... and in a given table: shown as unpublished, not checked
    published = verify.read_published(tmp_path / "pub.csv")
    computed = pub.rename(columns=lambda c: c.removeprefix("bhscore_").removesuffix("_percent"))
    r = verify.compare(computed, published)
    assert r.ok and r.table.set_index("dnn").at["Net-C", "status"] == "unpublished"
    assert "unpublished" in verify.format_report(r)
    rc, out = run_verify(vtree, tmp_path, capsys, extra, extra=["--dnn", "Net-A"])  # a subset
    assert rc == 0 and "PASS: 1 of 1" in out


def test_settings_must_be_the_papers(vtree, tmp_path, capsys):
    root = vtree["root"]
    pub = tmp_path / "pub.csv"
    vtree["published"].to_csv(pub, index=False)
    # the corrected filter in the settings: a fresh computation uses the legacy filter anyway
    s = write_settings(tmp_path / "corrected.json", root, p_method="corrected")
    assert cli_main(["verify", "--settings", s, "--published", str(pub)]) == 0
    capsys.readouterr()
    # but another voxel subsample cannot reproduce the encoding scores: refused with the reason
    s = write_settings(tmp_path / "sub.json", root, encoding_voxel_subsample=500)
    assert cli_main(["verify", "--settings", s, "--published", str(pub)]) == 2
    assert "encoding_voxel_subsample = 500" in capsys.readouterr().err


def test_verify_a_score_table(vtree, tmp_path, capsys):
    """`make verify` checks the table that `make figures` wrote; it must be a legacy-filter table."""
    from bhscore import figures

    settings = load_settings(vtree["settings"])
    figures.write_tables(figures.compute_tables(settings, progress=False), tmp_path / "figs")
    table = tmp_path / "figs" / "bhscores.csv"
    rc, out = run_verify(vtree, tmp_path, capsys, extra=["--table", str(table)])
    assert rc == 0 and "PASS" in out
    t = pd.read_csv(table)
    t["p_method"] = "corrected"
    t.to_csv(tmp_path / "corrected.csv", index=False)
    pub = tmp_path / "pub.csv"
    rc = cli_main(
        [
            "verify",
            "--settings",
            vtree["settings"],
            "--published",
            str(pub),
            "--table",
            str(tmp_path / "corrected.csv"),
        ]
    )
    assert rc == 2 and "p_method ['corrected']" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="score table not found"):
        verify.verify(settings, table=tmp_path / "absent.csv", published=tmp_path / "pub.csv")


def test_compare_nan_and_tolerances():
    pub = pd.DataFrame(
        {
            "dnn": ["a", "b"],
            "decoding": [0.1, np.nan],
            "encoding": [0.2, 0.3],
            "averaged": [0.15, np.nan],
            "imagenet_top1": [np.nan, np.nan],
        }
    )
    comp = pub.copy()
    assert verify.compare(comp, pub).ok  # NaN on both sides agrees
    comp.loc[1, "decoding"] = 0.4
    r = verify.compare(comp, pub)
    assert not r.ok and any(f.startswith("b: decoding") for f in r.failures)
    comp = pub.copy()
    comp.loc[0, "decoding"] += 0.05
    assert verify.compare(comp, pub, tolerances={"decoding": 0.1}).ok
    assert "FAIL" in verify.format_report(verify.compare(comp, pub))


def test_read_published_rejects_bad_files(tmp_path):
    (tmp_path / "a.csv").write_text("dnn,decoding\nx,0.1\n")
    with pytest.raises(UserError, match="missing column"):
        verify.read_published(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("dnn,decoding,encoding,averaged\nx,0.1,0.1,0.1\nx,0.2,0.2,0.2\n")
    with pytest.raises(UserError, match="twice"):
        verify.read_published(tmp_path / "b.csv")
    with pytest.raises(FileNotFoundError):
        verify.read_published(tmp_path / "none.csv")


def test_repository_reference_matches_settings():
    """reference/published_bhscores.csv: the paper's 29 DNNs, consistent, with settings.json's top-1 values."""
    pub = verify.read_published()
    assert len(pub) == 29 and pub.dnn.is_unique
    np.testing.assert_allclose(pub.averaged, (pub.decoding + pub.encoding) / 2, atol=1e-12)
    settings = load_settings(REPO_ROOT / "settings.json")
    assert verify.settings_problems(settings) == []
    for r in pub.itertuples():
        assert settings.dnn(r.dnn).imagenet_top1 == pytest.approx(r.imagenet_top1)
    # Figure 3B of the paper: rho(averaged, top-1) is about -0.73
    assert stats.spearmanr(pub.imagenet_top1, pub.averaged).statistic == pytest.approx(-0.73, abs=0.01)
