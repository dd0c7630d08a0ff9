# Figures (bhscore/figures/, analysis/*.ipynb) and the reproduction check (bhscore/verify.py).
#
# Real file targets, so `make -j` and incremental rebuilds work:
#   $(FIGURES)/bhscores.csv (+ $(FIGURES)/tables/*.csv)  <- settings, environment, score code, accuracy files
#   $(FIGURES)/<name>.pdf .png + notebooks/<name>.ipynb  <- analysis/<name>.ipynb, settings, table, environment
# Another settings file or figures directory: make figures SETTINGS=demo/settings.json FIGURES=figures/demo
# One figure: make figures/fig3b_imagenet.pdf  (or: bhscore figure fig3b_imagenet)
# The report page $(FIGURES)/index.html (`make report`, part of `make figures`) <- every figure and table.
# `make lab`: JupyterLab on analysis/ with the project's kernel (after `make figure-tables`).
# When the accuracies are missing, the table's recipe runs `make $(ACCURACY_TARGET)` first
# (empty ACCURACY_TARGET: stop with the list of missing files instead).

FIGURES ?= $(or $(BHSCORE_FIGURES),figures)
ACCURACY_TARGET ?= download-accuracy

FIGURE_NAMES := $(patsubst analysis/%.ipynb,%,$(wildcard analysis/*.ipynb))
FIGURE_TABLE := $(FIGURES)/bhscores.csv
FIGURE_FILES := $(foreach f,$(FIGURE_NAMES),$(FIGURES)/$(f).pdf $(FIGURES)/$(f).png $(FIGURES)/notebooks/$(f).ipynb)
FIGURE_CODE  := $(addprefix bhscore/figures/,__init__.py tables.py tables_io.py inputs.py plotting.py notebooks.py) \
                $(wildcard bhscore/score/*.py bhscore/stats/*.py)
REPORT       := $(FIGURES)/index.html
LAB_FLAGS    ?=
# `bhscore figure-tables` / `bhscore figure` without loading every other subcommand (faster start-up)
FIGURE_CMD   := $(PY) -m bhscore.commands.figures

.PHONY: figures figure-tables verify clean-figures report lab

figures: $(FIGURE_FILES) $(FIGURE_TABLE) $(REPORT) ## build every figure (PDF + PNG), figures/bhscores.csv and the report page (SETTINGS=, FIGURES= to override)

report: $(REPORT) ## the report page figures/index.html: tables, pairwise comparisons, every figure, verify, provenance

# one self-contained page (images embedded) from the tables and figures; verify's comparison is recomputed
$(REPORT): $(FIGURE_FILES) $(FIGURE_TABLE) bhscore/report.py reference/published_bhscores.csv $(SETTINGS) $(INSTALLED)
	$(PY) -m bhscore.commands.report --settings $(SETTINGS) --figures $(FIGURES)

# the project's kernel (ipykernel install --sys-prefix) found before any user kernel of the same name; root
# (containers, CI) needs --allow-root
lab: $(INSTALLED) ## JupyterLab on analysis/ with the project's kernel (first `make figure-tables`; LAB_FLAGS=--no-browser)
	JUPYTER_PATH="$(abspath $(VENV))/share/jupyter$${JUPYTER_PATH:+:$$JUPYTER_PATH}" \
	  $(VENV)/bin/jupyter lab --notebook-dir=analysis $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_FLAGS)

figure-tables: $(FIGURE_TABLE) ## compute the score table and the figures' tables only

# The accuracy files the table reads are prerequisites too (listed by bhscore when make considers this
# target: second expansion, so other targets never pay for it), so recomputed accuracies rebuild it.
.SECONDEXPANSION:
$(FIGURE_TABLE): $(SETTINGS) $(INSTALLED) $(FIGURE_CODE) \
    $$(if $$(wildcard $(PY)),$$(shell $(FIGURE_CMD) figure-tables --settings $(SETTINGS) --list-inputs 2>/dev/null))
	@$(FIGURE_CMD) figure-tables --settings $(SETTINGS) --check; rc=$$?; \
	if [ $$rc -eq 3 ] && [ -n "$(ACCURACY_TARGET)" ]; then \
	  echo "fetching them: make $(ACCURACY_TARGET)" >&2; $(MAKE) --no-print-directory $(ACCURACY_TARGET) || exit 1; \
	elif [ $$rc -ne 0 ]; then exit $$rc; fi
	$(FIGURE_CMD) figure-tables --settings $(SETTINGS) --out $(FIGURES)

# Accuracy files are made elsewhere (download, decode, encode); this rule stops make from searching its
# built-in implicit rules for each of them (seconds for the paper's 21,150 files). A missing one counts as
# changed, so the table's recipe runs and reports it.
%/accuracy.mat: ;

# one recipe makes all three files of a figure (a pattern rule with several targets)
$(FIGURES)/%.pdf $(FIGURES)/%.png $(FIGURES)/notebooks/%.ipynb: analysis/%.ipynb $(SETTINGS) $(FIGURE_TABLE) $(INSTALLED)
	$(FIGURE_CMD) figure $* --settings $(SETTINGS) --out $(FIGURES)

verify: $(FIGURE_TABLE) ## compare the scores with the published ones (reference/published_bhscores.csv)
	$(BHSCORE) verify --settings $(SETTINGS) --table $(FIGURE_TABLE)

clean-figures: ## remove the generated figures, tables and executed notebooks (the FIGURES dir)
	rm -rf -- "$(FIGURES)"

# Computed vs published accuracy files, file by file (bhscore/verify_accuracies.py); tolerances: settings
# analysis.verify. DNN= one DNN (default: every DNN with both trees). Tables and figure in $(FIGURES)/verify_accuracies.
DNN ?=
.PHONY: verify-accuracies
verify-accuracies: $(INSTALLED) ## compare computed accuracies with the published ones, file by file (DNN=AlexNet)
	$(BHSCORE) verify --accuracies --settings $(SETTINGS) $(if $(DNN),--dnn '$(DNN)') --out $(FIGURES)/verify_accuracies
