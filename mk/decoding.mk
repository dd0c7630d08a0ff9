# Decoding and encoding (bhscore/kinds.py, decoding.py, encoding.py, fitting.py, jobs/; decoding/README.md, encoding/README.md).
#   make decode DNN=AlexNet                  decoding accuracies of one DNN (every DNN when DNN is unset)
#   make encode DNN='AlexNet VGG19'          encoding accuracies of two DNNs
#   make -j2 decode-AlexNet decode-VGG19     one make job per DNN
#   make -j4 decode-workers WORKERS=4 DNN=AlexNet   WORKERS processes sharing one job list (a lock per job)
# Jobs already done are skipped, so every target can be rerun after an interruption. Extra flags go in
# DECODE_FLAGS / ENCODE_FLAGS, e.g. '--device cuda', '--shard 0/4', '--solver fastl2lir', '--save-model'.
DECODE_FLAGS ?=
ENCODE_FLAGS ?=
WORKERS      ?= 2
THREADS      ?=

_dnn_args    = $(foreach d,$(DNN),--dnn '$(d)')
_thread_args = $(if $(THREADS),--threads $(THREADS))
_workers     = $(shell seq 1 $(WORKERS))

.PHONY: decode encode decode-workers encode-workers decode-list encode-list bench-ridge

decode: $(INSTALLED) ## decoding accuracies (fMRI -> units) of DNN (default: all) into <data root>/computed/decoding_accuracy/<set>
	$(BHSCORE) decode --settings $(SETTINGS) $(_dnn_args) $(_thread_args) $(DECODE_FLAGS)

encode: $(INSTALLED) ## encoding accuracies (units -> fMRI) of DNN (default: all) into <data root>/computed/encoding_accuracy/<set>
	$(BHSCORE) encode --settings $(SETTINGS) $(_dnn_args) $(_thread_args) $(ENCODE_FLAGS)

decode-list: $(INSTALLED) ## list the decoding jobs of DNN (default: all): done / stale (why) / missing / invalid
	$(BHSCORE) decode --settings $(SETTINGS) $(_dnn_args) --list $(DECODE_FLAGS)

encode-list: $(INSTALLED) ## list the encoding jobs of DNN (default: all): done / stale (why) / missing / invalid
	$(BHSCORE) encode --settings $(SETTINGS) $(_dnn_args) --list $(ENCODE_FLAGS)

decode-workers: $(addprefix decode-worker-,$(_workers)) ## WORKERS decode processes sharing one job list (run with make -j)

encode-workers: $(addprefix encode-worker-,$(_workers)) ## WORKERS encode processes sharing one job list (run with make -j)

decode-worker-%: $(INSTALLED)
	$(BHSCORE) decode --settings $(SETTINGS) $(_dnn_args) --threads $(or $(THREADS),1) --no-progress $(DECODE_FLAGS)

encode-worker-%: $(INSTALLED)
	$(BHSCORE) encode --settings $(SETTINGS) $(_dnn_args) --threads $(or $(THREADS),1) --no-progress $(ENCODE_FLAGS)

decode-%: $(INSTALLED) ## decoding accuracies of the DNN named % (for make -j over DNNs)
	$(BHSCORE) decode --settings $(SETTINGS) --dnn '$*' $(_thread_args) $(DECODE_FLAGS)

encode-%: $(INSTALLED) ## encoding accuracies of the DNN named % (for make -j over DNNs)
	$(BHSCORE) encode --settings $(SETTINGS) --dnn '$*' $(_thread_args) $(ENCODE_FLAGS)

bench-ridge: $(INSTALLED) ## benchmark the batched FastL2LiR against fastl2lir (times, ratio, max diffs, peak memory)
	$(PY) bench/bench_ridge.py

.PHONY: bench-pipeline bench-gpu

bench-pipeline: $(INSTALLED) ## the whole reproduction, original procedure vs bhscore on a paper-sized simulated experiment, extrapolated
	$(PY) bench/bench_pipeline.py

bench-gpu: $(INSTALLED) ## the GPU checks (CUDA tests, ridge, sweep, wide, pipeline sample; ~10 min) into bench/gpu_results/
	PYTHON=$(PY) bash bench/bench_gpu.sh
