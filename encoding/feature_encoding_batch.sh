#!/usr/bin/env bash
# Encoding accuracies of several networks, one after the other (the original batch script).
#   encoding/feature_encoding_batch.sh [NET ...]   NET: a DNN dir (caffe/AlexNet) or name; none: every DNN
# Environment (SETTINGS, FLAGS: more `bhscore encode` flags, PY): see scripts/feature_batch.sh, which this runs.
exec bash "$(dirname "$0")/../scripts/feature_batch.sh" encoding "$@"
