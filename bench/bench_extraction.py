"""Throughput of feature extraction: torchvision ResNet-18, the paper's six layers, 1000 units per layer.

Prints images/s for
- ``forward``: the bare network on ready tensors (no hooks, no I/O): the ceiling;
- ``preprocess``: reading + the ``paper`` preset (JPEG decode, bicubic resize, normalisation) with the
  loader threads;
- ``extract``: ``bhscore.extraction.extract_features`` end to end (images in, MAT v7.3 files out), fresh tree.

on the CPU, and on CUDA when available. Random weights (throughput does not depend on them); procedural
JPEG stimuli (``bhscore.stimuli``) of ``--size`` pixels.

    python bench/bench_extraction.py [--n-images 64] [--size 256] [--batch-size 32] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from bhscore import extraction as ex
from bhscore.stimuli import write_stimuli

LAYERS = ["conv1_abs", "layer1", "layer2", "layer3", "layer4", "fc"]


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:8.1f} images/s  ({seconds:6.2f} s for {n})"


def bench(device: str, images: list[Path], batch_size: int, workers: int, tmp: Path) -> None:
    model = ex.load_model("torchvision:resnet18", None).model.eval().to(device)
    pre = ex.make_preprocess("paper", 224)

    t = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        arrays = list(pool.map(pre, images))
    print(f"[{device}] preprocess ({workers} threads): {_rate(len(images), time.perf_counter() - t)}")

    x = torch.from_numpy(np.stack(arrays))
    with torch.inference_mode():
        model(x[:batch_size].to(device))  # warm-up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        for i in range(0, len(x), batch_size):
            model(x[i : i + batch_size].to(device))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    print(f"[{device}] forward only:            {_rate(len(x), time.perf_counter() - t)}")

    out = tmp / f"feat_{device.replace(':', '_')}"
    s = ex.extract_features(model, images, out, LAYERS, device=device, batch_size=batch_size, workers=workers,
                            progress=False)  # fmt: skip
    print(f"[{device}] extract end to end:      {_rate(s.n_computed, s.seconds)}  "
          f"({len(LAYERS)} layers x {s.n_computed} files, 1000 units)")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-images", type=int, default=64)
    p.add_argument("--size", type=int, default=256, help="stimulus side length in pixels")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2, help="image-loading threads")
    p.add_argument("--device", action="append", help="cpu, cuda (default: cpu, plus cuda when available)")
    args = p.parse_args()
    devices = args.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {os.cpu_count()} cores; "
          f"{args.n_images} images of {args.size} px, batch {args.batch_size}")  # fmt: skip
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name(0)}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_stimuli(tmp / "images", args.n_images, seed=0, size=args.size)
        images = ex.list_images(tmp / "images")
        for device in devices:
            bench(device, images, args.batch_size, args.workers, tmp)


if __name__ == "__main__":
    main()
