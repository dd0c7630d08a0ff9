#!/usr/bin/env python3
"""Caffe feature extraction from a checkout, for a machine with pycaffe installed natively (Python >= 3.9).

Thin: runs :mod:`bhscore.caffe_container` (same options as ``python3 -m bhscore.caffe_container --help``),
which is what the Docker image runs (``bhscore extract --backend caffe`` builds that ``docker run`` command).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bhscore.caffe_container.extract import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
