#!/usr/bin/env bash
# Accuracies of several networks, one after the other: what decoding/feature_decoding_batch.sh and
# encoding/feature_encoding_batch.sh (the original batch scripts) run with their kind.
#   scripts/feature_batch.sh KIND [NET ...]   KIND: decoding|encoding; NET: a DNN dir (caffe/AlexNet) or name;
#                                             no NET: every DNN
# Environment: SETTINGS (default: $BHSCORE_SETTINGS, else the repository's settings.json), FLAGS (more
# `bhscore decode`/`bhscore encode` flags, e.g. "--device cuda"), PY (the Python; default: the repository's
# .venv). Finished jobs are skipped: rerun after an interruption. For parallel runs see KIND/slurm_array.sh and
# `make -j decode-workers` (encode-workers).
set -euo pipefail
case ${1:-} in
  decoding | encoding) kind=$1 ;;
  *) echo "feature_batch.sh: error: the first argument is the kind, decoding or encoding (got '${1:-}')" >&2; exit 2 ;;
esac
shift
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${PY:-$repo/.venv/bin/python}
entry=$repo/$kind/feature_${kind}_predict.py
settings_args=()
[ -z "${SETTINGS:-}" ] || settings_args=(--settings "$SETTINGS")
if [ $# -eq 0 ]; then
  # shellcheck disable=SC2086
  exec "$py" "$entry" "${settings_args[@]}" ${FLAGS:-}
fi
for net in "$@"; do
  echo "== $net"
  # shellcheck disable=SC2086
  "$py" "$entry" "${settings_args[@]}" --net "$net" ${FLAGS:-}
done
