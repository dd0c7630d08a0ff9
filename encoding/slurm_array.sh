#!/usr/bin/env bash
# SLURM array example: the encoding jobs of one DNN split over the array tasks.
#   sbatch --array=0-15 encoding/slurm_array.sh AlexNet [more `bhscore encode` flags]
# Each task runs the slice --shard I/N of the job list (I = its index, N = the array size). Tasks on a shared
# filesystem also hold a lock per job, so overlapping or repeated submissions never compute a job twice, and
# resubmitting the same array after a time-out finishes only the missing jobs.
#SBATCH --job-name=bhscore-encode
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=04:00:00
# For GPUs add e.g. "#SBATCH --gres=gpu:1" and pass --device cuda.
set -euo pipefail
dnn=${1:?usage: sbatch --array=0-N encoding/slurm_array.sh DNN [flags]}
shift
cd "${SLURM_SUBMIT_DIR:-.}"
index=$(( SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-0} ))
count=${SLURM_ARRAY_TASK_COUNT:?run this script with sbatch --array}
exec .venv/bin/bhscore encode --settings "${SETTINGS:-settings.json}" --dnn "$dnn" \
  --shard "$index/$count" --threads "${SLURM_CPUS_PER_TASK:-1}" --no-progress "$@"
