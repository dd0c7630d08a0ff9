#!/usr/bin/env bash
# SLURM array: the decoding jobs of the settings (every DNN, or the DNNs named) split over the array tasks.
#   sbatch --array=0-14 decoding/slurm_array.sh [DNN ...] [more `bhscore decode` flags]
#   SETTINGS=data/demo/settings.json sbatch --array=0-14 --mem=2G --cpus-per-task=1 decoding/slurm_array.sh
# Task I of an array 0-(N-1) runs `bhscore decode --shard I/N`: whole job groups (one (subject, ROI): its
# voxels serve every layer of every DNN), so one array over all DNNs loads each group's data once. More tasks
# than groups leave some idle (`python -m bhscore.resources decoding` prints the count and the --mem to ask).
# Shards, reruns (SHARDS=) and the environment (SETTINGS, REPO, BHSCORE): scripts/slurm_array.sh, which this
# runs with its kind. Defaults below: the estimate for the paper's data sizes; override on the sbatch line.
#SBATCH --job-name=bhscore-decode
#SBATCH --cpus-per-task=2
#SBATCH --mem=5G
#SBATCH --time=04:00:00
# For GPUs add e.g. "#SBATCH --gres=gpu:1" and pass --device cuda.
set -euo pipefail
# sbatch runs a copy of this file from slurmd's spool directory: find the submitted one (its checkout holds
# scripts/), from scontrol's Command= (relative to the submission directory)
script=$0
if [ -n "${SLURM_JOB_ID:-}" ] && command -v scontrol >/dev/null; then
  submitted=$(scontrol show job "$SLURM_JOB_ID" 2>/dev/null |
    sed -n 's/^ *Command=\([^ ]*\).*/\1/p' | head -n 1) || true
  [[ $submitted == /* ]] || submitted=${SLURM_SUBMIT_DIR:-.}/$submitted
  [ ! -f "$submitted" ] || script=$submitted
fi
shared=$(dirname "$script")/../scripts/slurm_array.sh
[ -f "$shared" ] || shared=${REPO:-.}/scripts/slurm_array.sh
[ -f "$shared" ] || {
  echo "slurm_array.sh: error: no scripts/slurm_array.sh beside $script: submit with REPO=/path/to/repository sbatch ..." >&2
  exit 2
}
exec bash "$shared" decoding "$@"
