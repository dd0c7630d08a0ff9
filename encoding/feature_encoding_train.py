#!/usr/bin/env python
"""Train encoders (DNN units -> fMRI voxels) of a network and keep them (bdmodel), with their test accuracies.

Thin wrapper: ``bhscore encode --save-model`` for the DNN whose directory is ``--net``.

    python encoding/feature_encoding_train.py --net caffe/AlexNet [--settings settings.json] [--device cuda] ...
"""

import sys

from bhscore.commands._jobs import legacy_main

if __name__ == "__main__":
    sys.exit(legacy_main("encoding", extra=("--save-model",)))
