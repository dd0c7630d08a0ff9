#!/usr/bin/env python
"""Train decoders (fMRI -> DNN units) of a network and keep them (bdmodel), with their test accuracies.

Thin wrapper: ``bhscore decode --save-model`` for the DNN whose directory is ``--net``.

    python decoding/feature_decoding_train.py --net caffe/AlexNet [--settings settings.json] [--device cuda] ...
"""

import sys

from bhscore.commands._jobs import legacy_main

if __name__ == "__main__":
    sys.exit(legacy_main("decoding", extra=("--save-model",)))
