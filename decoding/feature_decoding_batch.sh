#!/usr/bin/env bash
# Decoding accuracies of several networks, one after the other (the original batch script).
#   decoding/feature_decoding_batch.sh [NET ...]   NET: a DNN dir (caffe/AlexNet) or name; none: every DNN
# Environment (SETTINGS, FLAGS: more `bhscore decode` flags, PY): see scripts/feature_batch.sh, which this runs.
exec bash "$(dirname "$0")/../scripts/feature_batch.sh" decoding "$@"
