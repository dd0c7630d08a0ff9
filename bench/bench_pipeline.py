"""Benchmark: the whole reproduction, the original procedure and bhscore side by side, extrapolated to the paper.

A paper-sized simulated experiment in the real file formats (written once under ``--root``):

- 3 subjects; training 1200 images x 5 presentations = 6000 samples, test 50 images x 24 presentations;
- ROI sizes like the real ones (about 14k visual-cortex voxels per subject, of which these ROIs hold ~9.5k):
  V1 2000, V2 2000, V3 1600, V4 900, HVC 3000 voxels, scaled by 0.9 / 1.0 / 1.1 for sub-01 / 02 / 03;
- a DNN with AlexNet's layers: ``features/`` holds 1000 units per layer (the released random subsets, the
  decoding targets), ``features_all/`` all units of the layers the encoding sample uses (the paper's encoding
  inputs; AlexNet: conv1_abs 290,400, conv2 186,624, conv3/conv4 64,896, conv5 43,264, fc6/fc7 4096, fc8 1000).

Measured in one run, job by job (each in its own process; peak memory = the process's maximum resident set):

- the original procedure, as the KamitaniLab/BHscore scripts do it (bdpy's ``ModelTraining`` + fastl2lir, saved
  as bdmodel, then the predict step: ``ModelTest``, un-normalisation, per-unit ``np.corrcoef``, decoded features
  and accuracy saved), on a sample of decoding and encoding jobs;
- ``bhscore decode`` / ``bhscore encode`` on the same jobs (``--force``; per-job times from ``--no-progress``).

Cost model per job and method: ``T = t0 + F / R``, F the job's floating point operations (formulas in
:func:`flops`), (t0, R) fitted by least squares on the measured jobs and checked on each of them. It is
extrapolated to the 29 DNNs: 10,575 decoding jobs (705 layers x 3 subjects x 5 ROIs, 1000 units each) and the
encoding of all 705 layers (assumed to have AlexNet's distribution of layer sizes: 705 / 8 x its 8 layers),
with the ROI sizes above.

    python bench/bench_pipeline.py                    # CPU, the default sample
    python bench/bench_pipeline.py --device cuda --no-original --quick
    python bench/bench_pipeline.py --dry-run          # tiny sizes: checks the plumbing in a minute

Results: bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROI_BASE = {"V1": 2000, "V2": 2000, "V3": 1600, "V4": 900, "HVC": 3000}
SUBJECT_SCALE = {"sub-01": 0.9, "sub-02": 1.0, "sub-03": 1.1}
ALEXNET = {"conv1_abs": (96, 55, 55), "conv2": (256, 27, 27), "conv3": (384, 13, 13), "conv4": (384, 13, 13),
           "conv5": (256, 13, 13), "fc6": (4096,), "fc7": (4096,), "fc8": (1000,)}  # fmt: skip
N_LAYERS_PAPER = 705
DNN_DIR = "simulated/AlexNet"
N_SAMPLES, N_IMAGES, N_TEST, TEST_REPEATS = 6000, 1200, 50, 24
N_FEAT, ALPHA, DECODING_UNITS = 500, 100.0, 1000
MAX_GRAM_INPUTS = 16384  # bhscore.ridge.MAX_GRAM_INPUTS
WARMUP = "warmup"  # a tiny first layer: its encoding group pays the fMRI reading, not the sampled layers


def _units(layer: str) -> int:
    return int(np.prod(ALEXNET[layer]))


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -------------------------------------------------------------------------------------------------
# the simulated experiment
# -------------------------------------------------------------------------------------------------


def roi_sizes(scale: float = 1.0) -> dict[str, dict[str, int]]:
    """Voxels per (subject, ROI)."""
    return {s: {r: int(round(v * f * scale)) for r, v in ROI_BASE.items()} for s, f in SUBJECT_SCALE.items()}


def prepare(root: Path, enc_layers: list[str], dry: bool, seed: int = 0) -> Path:
    """Write (once) the simulated experiment under ``root``; returns its settings file."""
    from bhscore import formats
    from bhscore.paths import TEST, TRAINING, Layout
    from bhscore.simulate import stimulus_names

    settings_path = root / "settings.json"
    sizes = roi_sizes(0.05 if dry else 1.0)
    n_train, repeats = (60, 5) if dry else (N_IMAGES, N_SAMPLES // N_IMAGES)
    n_test, test_repeats = (12, 3) if dry else (N_TEST, TEST_REPEATS)
    layout = Layout(root)
    rng = np.random.default_rng(seed)
    names = stimulus_names(n_train + n_test, rng)
    order = rng.permutation(len(names))
    split = {
        TRAINING: sorted(names[i] for i in order[:n_train]),
        TEST: sorted(names[i] for i in order[n_train:]),
    }
    n_levels, n_latent = 5, 8
    latents = {
        s: rng.standard_normal((len(ns), n_levels * n_latent)).astype(np.float32) for s, ns in split.items()
    }
    t0 = time.perf_counter()
    wrote = []

    def write_layer(tree, layer: str, shape: tuple, depth: float) -> None:
        out = {s: tree(s, DNN_DIR) / layer for s in split}
        if all(d.is_dir() and len(list(d.glob("*.mat"))) == len(split[s]) for s, d in out.items()):
            return
        m = int(np.prod(shape))
        mix = np.exp(-((np.arange(n_levels) - depth) ** 2) / 0.8).repeat(n_latent).astype(np.float32)
        proj = np.random.default_rng([seed, m]).standard_normal((n_levels * n_latent, m), dtype=np.float32)
        for s, ns in split.items():
            feats = (latents[s] * mix) @ proj
            feats += np.random.default_rng([seed, m, len(ns)]).standard_normal(feats.shape, dtype=np.float32)
            np.maximum(feats, 0, out=feats)  # ReLU
            for i, name in enumerate(ns):
                formats.save_feature(out[s] / f"{name}.mat", feats[i].reshape((1, *shape)))
        wrote.append(f"{tree(TRAINING, DNN_DIR).parent.parent.parent.name}/{layer}")

    for j, layer in enumerate(ALEXNET):
        write_layer(layout.features_dir, layer, (DECODING_UNITS,), 4 * j / 7)
    for layer in enc_layers:
        shape = (max(1, _units(layer) // 400),) if dry else ALEXNET[layer]
        write_layer(layout.features_all_dir, layer, shape, 4 * list(ALEXNET).index(layer) / 7)
    for tree in (layout.features_dir, layout.features_all_dir):
        write_layer(tree, WARMUP, (16,), 0.0)
    for s_i, (subject, rois) in enumerate(sizes.items()):
        if all(layout.fmri_file(subject, s).exists() for s in split):
            continue
        srng = np.random.default_rng([seed, 10 + s_i])
        maps = {r: srng.standard_normal((n_latent, v)).astype(np.float32) / np.sqrt(n_latent)
                for r, v in rois.items()}  # fmt: skip
        for s, rep in ((TRAINING, repeats), (TEST, test_repeats)):
            shown = np.tile(np.arange(len(split[s])), rep)
            srng.shuffle(shown)
            z = latents[s][shown].reshape(len(shown), n_levels, n_latent)
            data = {r: z[:, k] @ maps[r] + 2.0 * srng.standard_normal((len(shown), rois[r]), dtype=np.float32) + 10
                    for k, r in enumerate(rois)}  # fmt: skip
            formats.write_fmri(
                layout.fmri_file(subject, s), data, [split[s][i] for i in shown], names=split[s]
            )
        wrote.append(subject)
    settings = {
        "data_root": ".",
        "subjects": list(sizes),
        "rois": list(ROI_BASE),
        "analysis": {
            "decoding": {"alpha": ALPHA, "n_feat": N_FEAT, "dtype": "float64"},
            "encoding": {"alpha": ALPHA, "n_feat": N_FEAT, "dtype": "float32"},
            "score": {"n_test_images": n_test},
        },
        "dnns": {
            "AlexNet": {
                "dir": DNN_DIR,
                "layers": [WARMUP, *ALEXNET],
            },  # features_all/: only the sampled layers
        },
    }
    formats.atomic_write_text(settings_path, json.dumps(settings, indent=2) + "\n")
    if wrote:
        print(
            f"wrote the simulated experiment under {root} in {time.perf_counter() - t0:.0f} s: {', '.join(wrote)}"
        )
    return settings_path


# -------------------------------------------------------------------------------------------------
# the original procedure (bdpy ModelTraining + fastl2lir, then the predict step), one job per process
# -------------------------------------------------------------------------------------------------


def original_job(root: Path, kind: str, dnn_dir: str, layer: str, subject: str, roi: str, out: Path) -> dict:
    """One job of the original scripts: train (ModelTraining + FastL2LiR, bdmodel), predict, accuracy, save.

    Decoding: X = the ROI's voxels (``ROI_<roi> = 1``), Y = the layer's features matched by ``image_index``
    (``Y_sort``), float64 fastl2lir; encoding: X = all units of the layer (float32, matched by stimulus name,
    ``X_sort``), Y = the voxels, ``dtype=np.float32``. The test samples are averaged per image.
    """
    import warnings

    import bdpy
    from bdpy.dataform import Features, load_array, save_array
    from bdpy.distcomp import DistComp
    from bdpy.ml import ModelTest, ModelTraining
    from bdpy.util import get_refdata
    from fastl2lir import FastL2LiR

    from bhscore.paths import TEST, TRAINING, Layout

    warnings.simplefilter("ignore")
    import fastl2lir.fastl2lir as impl

    impl.tqdm = lambda it, *a, **k: it  # its per-output progress bar would flood the log
    layout = Layout(root)
    times = {}
    t0 = time.perf_counter()
    model_dir = out / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    brain = bdpy.BData(str(layout.fmri_file(subject, TRAINING)))
    times["brain_load"] = time.perf_counter() - t0  # once per script run in the original, not per job
    tree = layout.features_dir if kind == "decoding" else layout.features_all_dir  # features_all: the paper's
    feats = Features(str(tree(TRAINING, dnn_dir)))
    select = f"ROI_{roi} = 1"
    if kind == "decoding":
        x = brain.select(select)
        x_labels = brain.select("image_index").flatten()
        y = feats.get_features(layer)
        y_labels = feats.index
        sort = {
            "Y_sort": {"index": np.array([np.where(np.array(y_labels) == xl) for xl in x_labels]).flatten()}
        }
        params = {"alpha": ALPHA, "n_feat": N_FEAT}
    else:
        x = feats.get_features(layer).astype(np.float32)
        x = x.reshape((x.shape[0], -1), order="F")
        x_labels = feats.labels
        y = brain.select(select).astype(np.float32)
        y_labels = brain.get_label("stimulus_name")
        sort = {
            "X_sort": {"index": np.array([np.where(np.array(x_labels) == yl) for yl in y_labels]).flatten()}
        }
        params = {"alpha": ALPHA, "n_feat": N_FEAT, "dtype": np.float32}
    norm = {"x_mean": np.mean(x, axis=0)[None], "x_norm": np.std(x, axis=0, ddof=1)[None],
            "y_mean": np.mean(y, axis=0)[None], "y_norm": np.std(y, axis=0, ddof=1)[None]}  # fmt: skip
    for key, value in norm.items():
        save_array(str(model_dir / f"{key}.mat"), value, key=key, dtype=np.float32, sparse=False)
    times["load"] = time.perf_counter() - t0
    train = ModelTraining(FastL2LiR(), x, y)
    train.id = f"{kind}-{layer}-{subject}-{roi}"
    train.model_parameters = params
    train.X_normalize = {"mean": norm["x_mean"], "std": norm["x_norm"]}
    train.Y_normalize = {"mean": norm["y_mean"], "std": norm["y_norm"]}
    for key, value in sort.items():
        setattr(train, key, value)
    train.dtype = np.float32
    train.save_format = "bdmodel"
    train.save_path = str(model_dir)
    train.distcomp = DistComp(backend="sqlite3", db_path=str(out / "distcomp.db"))
    train.verbose = 0
    t1 = time.perf_counter()
    train.run()
    times["train"] = time.perf_counter() - t1

    t2 = time.perf_counter()  # the predict script
    brain_te = bdpy.BData(str(layout.fmri_file(subject, TEST)))
    times["brain_load"] += time.perf_counter() - t2
    feats_te = Features(str(tree(TEST, dnn_dir)))
    if kind == "decoding":
        x = brain_te.select(select)
        x_labels = brain_te.select("image_index").flatten()
        y = feats_te.get_features(layer)
        y_labels = feats_te.index
    else:
        x = feats_te.get_features(layer).astype(np.float32)
        x = x.reshape((x.shape[0], -1), order="F")
        x_img = feats_te.labels
        y = brain_te.select(select).astype(np.float32)
        y_labels = brain_te.get_label("stimulus_name")
    loaded = {k: load_array(str(model_dir / f"{k}.mat"), key=k) for k in norm}
    if kind == "decoding":
        unique = np.unique(x_labels)
        x = np.vstack([np.mean(x[(np.array(x_labels) == lb).flatten(), :], axis=0) for lb in unique])
    else:
        unique = np.unique(y_labels)
        y = np.vstack([np.mean(y[(np.array(y_labels) == lb).flatten(), :], axis=0) for lb in unique])
    x = (x - loaded["x_mean"]) / loaded["x_norm"]
    test = ModelTest(FastL2LiR(), x)
    test.model_format = "bdmodel"
    test.model_path = str(model_dir)
    test.dtype = np.float32
    test.verbose = 0
    y_pred = test.run() * loaded["y_norm"] + loaded["y_mean"]
    if kind == "decoding":
        y_true = get_refdata(y.reshape(y.shape[0], -1), np.array(y_labels), unique)
    else:
        y_true = get_refdata(y, np.array(unique), np.array(x_img))
    accuracy = np.array(
        [np.corrcoef(y_pred[:, i].ravel(), y_true[:, i].ravel())[0, 1] for i in range(y_true.shape[1])]
    )
    pred_dir = out / "predicted"
    pred_dir.mkdir(exist_ok=True)
    for i, label in enumerate(unique if kind == "decoding" else x_img):
        save_array(
            str(pred_dir / f"{label}.mat"), y_pred[i][None], key="feat", dtype=np.float32, sparse=False
        )
    save_array(str(out / "accuracy.mat"), accuracy[None], key="accuracy", dtype=np.float32, sparse=False)
    times["predict"] = time.perf_counter() - t2
    times["job"] = time.perf_counter() - t0 - times["brain_load"]
    times["mean_accuracy"] = float(np.nanmean(accuracy))
    return times


# -------------------------------------------------------------------------------------------------
# running and measuring
# -------------------------------------------------------------------------------------------------


def _run(cmd: list[str], env=None) -> tuple[float, float, str]:
    """Run a command; wall seconds, peak resident memory (GiB) of the process, its output."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-3000:]}")
    return wall, usage.ru_maxrss / 2**20, out


def run_original(args, kind: str, dnn_dir: str, layer: str, subject: str, roi: str) -> dict:
    out = Path(args.root) / "original" / kind / layer / subject / roi
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        sys.executable,
        __file__,
        "--original-job",
        kind,
        dnn_dir,
        layer,
        subject,
        roi,
        str(out),
        "--root",
        args.root,
    ]
    wall, gib, text = _run(cmd)
    inner = json.loads(text.strip().splitlines()[-1])
    return {"wall": wall, "gib": gib, **inner}


def run_ours(args, kind: str, dnn: str, layers: list[str], subject: str, rois: list[str]) -> dict:
    """``bhscore decode``/``encode`` on the jobs; per-job seconds from the ``done ... (x s)`` lines."""
    command = "decode" if kind == "decoding" else "encode"
    cmd = [str(Path(sys.executable).with_name("bhscore")), command, "--settings", str(Path(args.root) / "settings.json"),
           "--dnn", dnn, "--subject", subject, "--force", "--no-progress", "--device", args.device]  # fmt: skip
    for la in layers:
        cmd += ["--layer", la]
    for r in rois:
        cmd += ["--roi", r]
    wall, gib, text = _run(cmd)
    done = [
        (line, float(m.group(1)))
        for line in text.splitlines()
        if (m := re.search(r"^done\s.*\((\d+\.?\d*) s\)", line))
    ]
    return {"s": wall, "gib": gib, "jobs": done}


# -------------------------------------------------------------------------------------------------
# cost model
# -------------------------------------------------------------------------------------------------


def flops(
    method: str, kind: str, m: int, q: int, n: int = N_SAMPLES, r: int = N_IMAGES, k: int = N_FEAT
) -> float:
    """Floating point operations of one job: m inputs, q outputs (decoding: m voxels, q units; encoding: m
    units, q voxels), n samples of r images, k selected inputs per output.

    - original (fastl2lir): Gram ``n m^2``, correlations and ``Y^T X`` ``4 n m q``, one LU solve per output
      ``2/3 (k + 1)^3`` (without selection, k = m: one solve for all outputs);
    - ours: decoding per layer (the voxels' Gram is shared by all layers): correlations from the image sums
      ``2 r m q``, per output gather + Cholesky ``(k + 1)^2 + (k + 1)^3 / 3``; encoding: correlations over
      the r distinct rows ``2 r m q``, the Gram ``r m^2`` up to 16,384 units, else per output a sub-Gram from r
      weighted rows ``r (k + 1)^2``; gather + Cholesky as in decoding.
    """
    if m <= k:
        return float(n * m * m + 4 * n * m * q + 2 / 3 * (m + 1) ** 3 + 2 * (m + 1) ** 2 * q)
    if method == "original":
        return float(n * m * m + 4 * n * m * q + q * 2 / 3 * (k + 1) ** 3)
    solves = q * ((k + 1) ** 2 + (k + 1) ** 3 / 3)
    if kind == "decoding":
        return float(2 * r * m * q + solves)
    if m <= MAX_GRAM_INPUTS:  # the units' Gram from the r distinct rows, sub-Grams gathered from it
        return float(r * m * m + 2 * r * m * q + solves)
    return float(2 * r * m * q + q * r * (k + 1) ** 2 + solves)  # wide: sub-Grams from the selected columns


def fit_model(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(t0, rate) of ``T = t0 + F / rate``, least squares over the measured (F, T); a constant (the mean
    time, rate inf) where the times do not grow with F (noise larger than the flops' effect)."""
    f = np.array([p[0] for p in points])
    t = np.array([p[1] for p in points])
    if np.ptp(f) == 0:
        return float(t.mean()), float("inf")
    slope, t0 = np.polyfit(f, t, 1)
    if slope <= 0:
        return float(t.mean()), float("inf")
    if t0 < 0:  # through the origin
        return 0.0, float((f * f).sum() / (f * t).sum())
    return float(t0), float(1 / slope)


def predict(model: tuple[float, float], f: float) -> float:
    t0, rate = model
    return t0 + f / rate


# -------------------------------------------------------------------------------------------------
# main
# -------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="/tmp/bhscore_pipeline", help="where the simulated experiment goes")
    p.add_argument("--device", default="cpu", help="device of bhscore decode/encode")
    p.add_argument("--no-original", action="store_true", help="time bhscore only (e.g. on a GPU machine)")
    p.add_argument("--quick", action="store_true", help="a smaller sample (2 ROIs, 2 encoding layers)")
    p.add_argument("--dry-run", action="store_true", help="tiny sizes: checks the plumbing only")
    p.add_argument("--wide-layer", default="conv5", help="the wide encoding layer of bhscore's sample")
    p.add_argument("--json", help="append the results as one JSON line to this file")
    p.add_argument("--original-job", nargs=6, metavar=("KIND", "DNN_DIR", "LAYER", "SUBJECT", "ROI", "OUT"),
                   help=argparse.SUPPRESS)  # fmt: skip
    args = p.parse_args(argv)
    if args.original_job:
        kind, dnn_dir, layer, subject, roi, out = args.original_job
        print(json.dumps(original_job(Path(args.root), kind, dnn_dir, layer, subject, roi, Path(out))))
        return 0

    root = Path(args.root + ("_dry" if args.dry_run else ""))
    args.root = str(root)
    subject = "sub-01"
    dec_rois = ["V4", "HVC"] if args.quick else ["V4", "V1", "HVC"]
    enc_layers = ["fc8", "fc6"]  # the original's Gram of all units fits in memory only for these
    wide = [args.wide_layer] if args.wide_layer else []
    settings_path = prepare(root, enc_layers + wide, args.dry_run)
    sizes = roi_sizes(0.05 if args.dry_run else 1.0)
    n_units = {la: (max(1, _units(la) // 400) if args.dry_run else _units(la)) for la in ALEXNET}
    dec_units = DECODING_UNITS
    print(
        f"bhscore pipeline benchmark: {settings_path}, device {args.device}, {os.cpu_count()} CPUs (load {_load()})"
    )
    print(
        "ROI voxels: "
        + "; ".join(f"{s} " + ", ".join(f"{r} {v}" for r, v in rs.items()) for s, rs in sizes.items())
    )
    results = {"device": args.device, "cpus": os.cpu_count(), "decoding": [], "encoding": []}

    # decoding: per ROI size, the original on one layer, ours on two (the second is the per-layer cost)
    for roi in dec_rois:
        v = sizes[subject][roi]
        rec = {"roi": roi, "voxels": v}
        ours = run_ours(args, "decoding", "AlexNet", ["fc7", "fc8"], subject, [roi])
        rec.update(ours_s=ours["jobs"][-1][1], ours_first_s=ours["jobs"][0][1], ours_gib=ours["gib"])
        if not args.no_original:
            orig = run_original(args, "decoding", DNN_DIR, "fc8", subject, roi)
            rec.update(
                original_s=orig["job"],
                original_wall_s=orig["wall"],
                original_gib=orig["gib"],
                original_accuracy=orig["mean_accuracy"],
            )
        results["decoding"].append(rec)
        print(f"  decoding {roi} ({v} voxels -> {dec_units} units): " + (f"original {rec['original_s']:.1f} s "
              f"(peak {rec['original_gib']:.2f} GiB), " if "original_s" in rec else "") + f"bhscore {rec['ours_s']:.1f} s "
              f"per layer ({rec['ours_first_s']:.1f} s for the group's first, peak {rec['ours_gib']:.2f} GiB)  "
              f"(load {_load()})", flush=True)  # fmt: skip

    # encoding: one ROI, layers of increasing width; the original only where its Gram fits in memory. bhscore:
    # one run, a tiny layer first (its group reads the fMRI), then each sampled layer's group
    roi = "V4"
    q = sizes[subject][roi]
    ours = run_ours(args, "encoding", "AlexNet", [WARMUP, *enc_layers, *wide], subject, [roi])
    ours_s = {line.split()[3]: t for line, t in ours["jobs"]}
    for layer in enc_layers + wide:
        m = n_units[layer]
        rec = {"layer": layer, "units": m, "voxels": q, "ours_s": ours_s[layer], "ours_gib": ours["gib"]}
        if not args.no_original and layer in enc_layers:
            orig = run_original(args, "encoding", DNN_DIR, layer, subject, roi)
            rec.update(original_s=orig["job"], original_wall_s=orig["wall"], original_gib=orig["gib"],
                       original_accuracy=orig["mean_accuracy"])  # fmt: skip
        results["encoding"].append(rec)
        print(f"  encoding {layer} ({m} units -> {roi} {q} voxels): " + (f"original {rec['original_s']:.1f} s "
              f"(peak {rec['original_gib']:.2f} GiB), " if "original_s" in rec else "") + f"bhscore {rec['ours_s']:.1f} s "
              f"(peak of the run {rec['ours_gib']:.2f} GiB)  (load {_load()})", flush=True)  # fmt: skip

    # cost models and the paper's totals
    print("\ncost model T = t0 + F / R per job (F: flops(); least squares over the measured jobs):")
    totals = {}
    n_r = (60, 12) if args.dry_run else (N_SAMPLES, N_IMAGES)
    for kind, recs, key in (
        ("decoding", results["decoding"], "voxels"),
        ("encoding", results["encoding"], "units"),
    ):
        for method in ("original", "ours"):
            pts = [(rec, flops(method, kind, rec[key], dec_units if kind == "decoding" else rec["voxels"], *n_r))
                   for rec in recs if f"{method}_s" in rec]  # fmt: skip
            if len(pts) < 2:
                continue
            model = fit_model([(f, rec[f"{method}_s"]) for rec, f in pts])
            checks = ", ".join(f"{rec.get('roi', rec.get('layer'))} {predict(model, f):.1f} s vs {rec[f'{method}_s']:.1f} s"
                               for rec, f in pts)  # fmt: skip
            print(
                f"  {kind} {method}: t0 {model[0]:.2f} s, R {model[1] / 1e9:.1f} GFLOP/s; predicted vs measured: {checks}"
            )
            if kind == "decoding":
                total = N_LAYERS_PAPER * sum(predict(model, flops(method, kind, v, dec_units, *n_r))
                                             for rs in sizes.values() for v in rs.values())  # fmt: skip
            elif method == "original":  # one job per (layer, subject, ROI); AlexNet's layer sizes
                per_alexnet = sum(predict(model, flops(method, kind, n_units[la], v, *n_r))
                                  for la in ALEXNET for rs in sizes.values() for v in rs.values())  # fmt: skip
            else:  # one fit per (layer, subject) for all its ROIs' voxels
                per_alexnet = sum(predict(model, flops(method, kind, n_units[la], sum(rs.values()), *n_r))
                                  for la in ALEXNET for rs in sizes.values())  # fmt: skip
            if kind == "encoding":
                total = per_alexnet * N_LAYERS_PAPER / len(ALEXNET)
            totals[f"{kind}_{method}_h"] = total / 3600
            results[f"model_{kind}_{method}"] = model
    if "model_encoding_ours" in results:  # per AlexNet layer: the paper's jobs of one subject (sub-02 sizes)
        rs = sizes["sub-02"] if "sub-02" in sizes else next(iter(sizes.values()))
        print("  encoding per layer, one subject (5 ROIs), predicted: original (fastl2lir's Gram needs 3 (m+1)^2 "
              "float32) / bhscore")  # fmt: skip
        for la in ALEXNET:
            m = n_units[la]
            line = f"    {la:9s} {m:7d} units: "
            if "model_encoding_original" in results:
                t = sum(predict(results["model_encoding_original"], flops("original", "encoding", m, v, *n_r))
                        for v in rs.values())  # fmt: skip
                line += f"original {t / 60:7.1f} min (>= {3 * (m + 1) ** 2 * 4 / 2**30:6.1f} GiB); "
            t = predict(results["model_encoding_ours"], flops("ours", "encoding", m, sum(rs.values()), *n_r))
            print(line + f"bhscore {t / 60:5.1f} min")
    for kind in ("decoding", "encoding"):
        line = ", ".join(
            f"{m} {totals[f'{kind}_{m}_h']:.1f} h" for m in ("original", "ours") if f"{kind}_{m}_h" in totals
        )
        if line:
            print(
                f"  extrapolated {kind} (29 DNNs): {line} of this machine ({os.cpu_count()} CPUs"
                + (f", bhscore on {args.device}" if args.device != "cpu" else "")
                + ")"
            )
    results["totals_h"] = totals
    results["load"] = _load()
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps({"bench": "pipeline", **results}, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
