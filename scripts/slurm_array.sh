#!/usr/bin/env bash
# One task of a SLURM array of decoding or encoding jobs; decoding/slurm_array.sh and encoding/slurm_array.sh
# (what you submit: they hold the #SBATCH defaults of their kind) run it as
#   scripts/slurm_array.sh KIND [DNN ...] [more `bhscore decode`/`bhscore encode` flags]   KIND: decoding|encoding
# Task I of an array 0-(N-1) runs `bhscore decode --shard I/N` (or encode): whole job groups, so each group's
# data is loaded once (`python -m bhscore.resources KIND` prints the group count and the --mem to ask).
# Rerun some tasks of an array of N: SHARDS=N sbatch --array=5,9 ... (other arrays than 0-(N-1) need SHARDS).
# A lock per job and skip-if-done make repeated or overlapping submissions safe: a resubmission after a
# time-out, scancel or node failure runs only the missing jobs.
# Environment: SETTINGS (else $BHSCORE_SETTINGS, else the repository's settings.json), SHARDS, REPO (the
# repository whose .venv/bin/bhscore runs; default: the one holding this script) or BHSCORE (the bhscore
# executable).
set -euo pipefail
me=slurm_array.sh
fail() { echo "$me: error: $*" >&2; exit 2; }

case ${1:-} in
  decoding) command=decode ;;
  encoding) command=encode ;;
  *) fail "the first argument is the kind, decoding or encoding (got '${1:-}')" ;;
esac
shift

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

repo=${REPO:-$(cd "$(dirname "$0")/.." && pwd)}
bhscore=${BHSCORE:-$repo/.venv/bin/bhscore}
[ -x "$bhscore" ] ||
  fail "no bhscore at $bhscore: submit with REPO=/path/to/repository (or BHSCORE=...) sbatch ..."

echo "$me: task $task = shard $task/$count: $bhscore $command ${settings_args[*]} ${dnn_args[*]} $*" >&2
exec "$bhscore" "$command" "${settings_args[@]}" "${dnn_args[@]}" --shard "$task/$count" \
  --threads "${SLURM_CPUS_PER_TASK:-1}" --no-progress "$@"
