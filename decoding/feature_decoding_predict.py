#!/usr/bin/env python
"""Decode the test images of a network: decoded features (one .mat per image) and accuracy per unit.

Thin wrapper: ``bhscore decode --save-features`` for the DNN whose directory is ``--net``.

    python decoding/feature_decoding_predict.py --net caffe/AlexNet [--settings settings.json] [--device cuda] ...
"""

import sys

from bhscore.commands._jobs import legacy_main

if __name__ == "__main__":
    sys.exit(legacy_main("decoding", extra=("--save-features",)))
