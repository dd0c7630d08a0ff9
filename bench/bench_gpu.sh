#!/usr/bin/env bash
# The GPU checks of issue #14 in one run (about 10 minutes on one H200): the CUDA tests, the decoding-sized fit
# against fastl2lir, the paper-scale sweep, the wide encoding bench (per image vs row-expanded) and the pipeline
# bench on a sample. Writes everything under OUT (default bench/gpu_results/): nvidia-smi.txt, log.txt (all
# output), results.jsonl (one JSON line per result), summary.txt (printed at the end).
#
#   bash bench/bench_gpu.sh             # on a machine with a CUDA GPU (make bench-gpu)
#   bash bench/bench_gpu.sh --dry-run   # tiny sizes on the CPU: checks the script's plumbing
#
# Each step has its own time limit; a failing step is recorded and the others still run (exit status 1 if any
# failed).
set -u
cd "$(dirname "$0")/.."
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
OUT=${OUT:-bench/gpu_results}
mkdir -p "$OUT"
LOG="$OUT/log.txt"
JSON="$OUT/results.jsonl"
: >"$LOG"
: >"$JSON"
FAILED=()

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    echo "== $name ($(date +%T), limit ${limit}s): $*" | tee -a "$LOG"
    local t0=$SECONDS
    timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
    local rc=$?
    echo "== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$LOG"
    [ $rc -eq 0 ] || FAILED+=("$name (exit $rc)")
}

if command -v nvidia-smi >/dev/null; then
    nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$OUT/nvidia-smi.txt" 2>&1
else
    echo "nvidia-smi: not found" >"$OUT/nvidia-smi.txt"
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')" | tee -a "$LOG"
uptime | tee -a "$LOG"

if [ $DRY -eq 1 ]; then
    DEV=cpu
    step "pytest -m gpu" 300 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/test_ridge.py tests/test_ridge_per_image.py
    step "decoding-sized fit" 120 "$PY" bench/bench_ridge.py --device $DEV --samples 1200 --images 240 --inputs 400 --outputs 200 --n-feat 100 --repeat 1 --json "$JSON"
    step "sweep" 120 "$PY" bench/bench_ridge.py --device $DEV --sweep --dtype float64 --samples 1200 --images 240 --sweep-inputs 200,400 --outputs 100 --n-feat 100 --json "$JSON"
    step "wide encoding" 180 "$PY" bench/bench_ridge.py --device $DEV --wide --samples 1200 --images 240 --wide-inputs 20000 --wide-outputs 100 --tmpdir "${TMPDIR:-/tmp}" --delete --json "$JSON"
    step "pipeline sample" 300 "$PY" bench/bench_pipeline.py --device $DEV --dry-run --quick --no-original --root "${TMPDIR:-/tmp}/bhscore_pipeline_gpu" --json "$JSON"
else
    DEV=cuda
    step "pytest -m gpu" 180 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/
    step "decoding-sized fit" 150 "$PY" bench/bench_ridge.py --device $DEV --repeat 3 --json "$JSON"
    step "sweep" 90 "$PY" bench/bench_ridge.py --device $DEV --sweep --dtype float64 --json "$JSON"
    step "wide encoding" 180 "$PY" bench/bench_ridge.py --device $DEV --wide --tmpdir "${TMPDIR:-/tmp}" --delete --json "$JSON"
    step "pipeline sample" 240 "$PY" bench/bench_pipeline.py --device $DEV --quick --no-original --root "${TMPDIR:-/tmp}/bhscore_pipeline_gpu" --json "$JSON"
fi

{
    echo "GPU bench $(date -u +%FT%TZ) on $(hostname); device $DEV; load: $(uptime | sed 's/.*load average: //')"
    tail -n 1 "$OUT/nvidia-smi.txt"
    echo "pytest -m gpu: $(grep -E '^[0-9]+ (passed|failed|skipped|error)|^=+ .*(passed|failed|skipped)' "$LOG" | head -n 1)"
    "$PY" - "$JSON" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    what = r.get("what", r.get("bench"))
    if what == "decoding-fit":
        print(f"decoding-sized fit {r['dtype']}: ours per image {r['per_image_s']:.3f} s (correlation step "
              f"{r['per_image_select_s']:.3f} s), fastl2lir {r.get('fastl2lir_s', float('nan')):.2f} s, "
              f"ratio {r.get('ratio', float('nan')):.0f}x (target >= 100x); selections differing "
              f"{r.get('sel_diff', '?')}; 10,575 fits: {r.get('paper_fits_min', float('nan')):.1f} min")
    elif what == "sweep":
        print(f"sweep {r['dtype']}: per layer {r['per_image_mean_s']:.3f} s; 10,575 fits: "
              f"{r['per_image_paper_min']:.1f} min (target < 10 min)")
    elif what == "wide":
        print(f"wide {r['samples']}x{r['inputs']} -> {r['outputs']}: per image {r['per_image_s']:.1f} s, "
              f"row-expanded {r.get('expanded_s', float('nan')):.1f} s, ratio {r.get('ratio', float('nan')):.1f}x, "
              f"selections differing {r.get('sel_diff', '?')}")
    elif r.get("bench") == "pipeline":
        t = r.get("totals_h", {})
        print(f"pipeline sample on {r['device']}: decoding {t.get('decoding_ours_h', float('nan')) * 60:.1f} min, "
              f"encoding {t.get('encoding_ours_h', float('nan')) * 60:.1f} min extrapolated to the 29 DNNs "
              f"(targets: < 10 min, < 60 min)")
EOF
    if [ ${#FAILED[@]} -eq 0 ]; then echo "all steps passed"; else printf 'FAILED: %s\n' "${FAILED[@]}"; fi
} | tee "$OUT/summary.txt"
[ ${#FAILED[@]} -eq 0 ]
