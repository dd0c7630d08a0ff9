# The demo (bhscore/demo.py): the whole pipeline on a simulated experiment, through the same rules as the
# real data: `bhscore demo --step prepare` writes stimuli, features, fMRI and a settings file under
# DEMO_ROOT; then the ordinary decode/encode commands and `make figures` run on that settings file.
# `bhscore demo` runs the same commands (bhscore.demo.pipeline, which tests/test_demo.py checks against this
# recipe), with the figure commands of `make figures` instead of the incremental rules.
DEMO_ROOT    ?= data/demo
DEMO_FIGURES ?= $(FIGURES)/demo
DEMO_FLAGS   ?=

.PHONY: demo demo-clean

demo: $(INSTALLED) ## the whole method end to end on a simulated experiment (1-2 min, no download) -> figures/demo/
	$(BHSCORE) demo --step prepare --root $(DEMO_ROOT) $(DEMO_FLAGS)
	$(BHSCORE) decode --settings $(DEMO_ROOT)/settings.json --device cpu
	$(BHSCORE) encode --settings $(DEMO_ROOT)/settings.json --device cpu
	$(MAKE) --no-print-directory figures SETTINGS=$(DEMO_ROOT)/settings.json FIGURES=$(DEMO_FIGURES) ACCURACY_TARGET=
	@$(BHSCORE) demo --step summary --root $(DEMO_ROOT) --figures $(DEMO_FIGURES)

demo-clean: ## remove the demo's data and figures
	rm -rf -- "$(DEMO_ROOT)" "$(DEMO_FIGURES)"
