#!/usr/bin/env bash
# SLURM array: the encoding jobs of the settings (every DNN, or the DNNs named) split over the array tasks.
#   sbatch --array=0-23 encoding/slurm_array.sh [DNN ...] [more `bhscore encode` flags]
#   SETTINGS=data/demo/settings.json sbatch --array=0-23 --mem=2G --cpus-per-task=1 encoding/slurm_array.sh
# Task I of an array 0-(N-1) runs `bhscore encode --shard I/N`: whole job groups (one (DNN, layer, subject):
# its units serve every ROI), so each layer's units are prepared once per subject. More tasks than groups
# leave some idle (`python -m bhscore.resources encoding` prints the count and the --mem to ask).
# Rerun some tasks of an array of N: SHARDS=N sbatch --array=5,9 ... (other arrays than 0-(N-1) need SHARDS).
# A lock per job and skip-if-done make repeated or overlapping submissions safe: a resubmission after a
# time-out, scancel or node failure runs only the missing jobs.
# Environment: SETTINGS (else $BHSCORE_SETTINGS, else the repository's settings.json), SHARDS, REPO (the
# repository; default: found from this script) or BHSCORE (the bhscore executable).
# Defaults below: the estimate for the paper's data sizes; override on the sbatch line (--mem=..., ...).
#SBATCH --job-name=bhscore-encode
#SBATCH --cpus-per-task=2
#SBATCH --mem=11G
#SBATCH --time=04:00:00
# For GPUs add e.g. "#SBATCH --gres=gpu:1" and pass --device cuda.
set -euo pipefail
me=slurm_array.sh
fail() { echo "$me: error: $*" >&2; exit 2; }

task=${SLURM_ARRAY_TASK_ID:-}
[ -n "$task" ] || fail "not a SLURM array task: submit with sbatch --array=0-N (see the top of this script)"
if [ -n "${SHARDS:-}" ]; then
  count=$SHARDS
  [[ $count =~ ^[1-9][0-9]*$ ]] || fail "SHARDS must be a positive integer (the array size), got '$count'"
else
  min=${SLURM_ARRAY_TASK_MIN:-} max=${SLURM_ARRAY_TASK_MAX:-} count=${SLURM_ARRAY_TASK_COUNT:-}
  if [ "$min" != 0 ] || [ "$count" != "$((max + 1))" ]; then
    fail "the array (ids $min-$max, $count tasks) is not 0-(N-1) with step 1, so the shard count N is" \
      "unknown: give it, e.g. SHARDS=16 sbatch --array=$task ... to rerun task $task of an array 0-15"
  fi
fi
((task < count)) || fail "array task $task is outside the $count shards 0-$((count - 1)) (SHARDS=$count)"

dnn_args=()
while [ $# -gt 0 ] && [[ $1 != -* ]]; do dnn_args+=(--dnn "$1"); shift; done
settings_args=()
[ -z "${SETTINGS:-}" ] || settings_args=(--settings "$SETTINGS")

if [ -n "${BHSCORE:-}" ]; then
  bhscore=$BHSCORE
else
  repo=${REPO:-}
  if [ -z "$repo" ]; then
    # sbatch runs a copy of this script from slurmd's spool directory: find the submitted path
    script=$0
    if [ -n "${SLURM_JOB_ID:-}" ] && command -v scontrol >/dev/null; then
      submitted=$(scontrol show job "$SLURM_JOB_ID" 2>/dev/null |
        sed -n 's/^ *Command=\([^ ]*\).*/\1/p' | head -n 1)
      [[ $submitted == /* ]] || submitted=${SLURM_SUBMIT_DIR:-.}/$submitted
      [ ! -f "$submitted" ] || script=$submitted
    fi
    repo=$(cd "$(dirname "$script")/.." && pwd)
  fi
  bhscore=$repo/.venv/bin/bhscore
fi
[ -x "$bhscore" ] ||
  fail "no bhscore at $bhscore: submit with REPO=/path/to/repository (or BHSCORE=...) sbatch ..."

echo "$me: task $task = shard $task/$count: $bhscore encode ${settings_args[*]} ${dnn_args[*]} $*" >&2
exec "$bhscore" encode "${settings_args[@]}" "${dnn_args[@]}" --shard "$task/$count" \
  --threads "${SLURM_CPUS_PER_TASK:-1}" --no-progress "$@"
