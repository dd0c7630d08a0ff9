#!/usr/bin/env python
"""Encoding accuracies of a network: predicted test responses scored per voxel (Pearson r).

Thin wrapper: ``bhscore encode`` for the DNN whose directory is ``--net``.

    python encoding/feature_encoding_predict.py --net caffe/AlexNet [--settings settings.json] [--device cuda] ...
"""

import sys

from bhscore.commands._jobs import legacy_main

if __name__ == "__main__":
    sys.exit(legacy_main("encoding"))
