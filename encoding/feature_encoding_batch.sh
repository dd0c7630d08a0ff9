#!/usr/bin/env bash
# Encoding accuracies of several networks, one after the other (the original batch script).
#   encoding/feature_encoding_batch.sh [NET ...]   NET: a DNN dir (caffe/AlexNet) or name; none: every DNN
# Environment: SETTINGS (default: $BHSCORE_SETTINGS, else the repository's settings.json), FLAGS (more
# `bhscore encode` flags, e.g. "--device cuda"), PY (the Python; default: the repository's .venv).
# Finished jobs are skipped: rerun after an interruption. For parallel runs see slurm_array.sh and
# `make -j encode-workers`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=${PY:-$here/../.venv/bin/python}
settings_args=()
[ -z "${SETTINGS:-}" ] || settings_args=(--settings "$SETTINGS")
if [ $# -eq 0 ]; then
  # shellcheck disable=SC2086
  exec "$py" "$here/feature_encoding_predict.py" "${settings_args[@]}" ${FLAGS:-}
fi
for net in "$@"; do
  echo "== $net"
  # shellcheck disable=SC2086
  "$py" "$here/feature_encoding_predict.py" "${settings_args[@]}" --net "$net" ${FLAGS:-}
done
