# The SLURM route on a real scheduler (tests/slurm/run_slurm_test.sh; see decoding/README.md). Needs root:
# installs slurm-wlm and munge from Debian's packages when missing, starts a private single-node SLURM, runs
# the decoding array on the quick demo (every job once, a resubmission skips all, a cancelled task resumes,
# results equal a serial run) and stops the daemons. The scripts' shell logic alone: tests/slurm/test_*.py.
.PHONY: test-slurm

test-slurm: $(INSTALLED) ## the decoding SLURM array on a real single-node SLURM (root; installs slurm-wlm)
	bash tests/slurm/run_slurm_test.sh
