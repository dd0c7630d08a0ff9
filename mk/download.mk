# Downloads from figshare (bhscore/download/): checked against figshare's MD5, recorded in
# <data root>/downloads.lock.json, resumable, idempotent (a complete download makes no request).
# Extra flags: make download-fmri DOWNLOAD_FLAGS='--subject sub-01'  (see `bhscore download --help`)
DOWNLOAD_FLAGS ?=

.PHONY: download-fmri download-features download-accuracy download-all download-status

download-fmri: $(INSTALLED) ## download the fMRI data of sub-01..03 (~2.4 GB) into <data root>/fmri
	$(BHSCORE) download fmri --settings $(SETTINGS) $(DOWNLOAD_FLAGS)

download-features: $(INSTALLED) ## download the DNN features, 1000 units/layer (~6.8 GB) into <data root>/features
	$(BHSCORE) download features --settings $(SETTINGS) $(DOWNLOAD_FLAGS)

download-accuracy: $(INSTALLED) ## download the published decoding + encoding accuracies (~350 MB) into <data root>/published
	$(BHSCORE) download accuracy --settings $(SETTINGS) $(DOWNLOAD_FLAGS)

download-all: download-fmri download-features download-accuracy ## all of the above (~9.5 GB)

download-status: $(INSTALLED) ## list every remote file, its state and destination (no network)
	$(BHSCORE) download all --list --settings $(SETTINGS)

# The all-units features (the paper's encoding inputs; opt-in, ~800 GB for all 29 DNNs), one DNN at a time:
#   make download-features-all DNN=AlexNet   (size and free disk are checked before it starts)
.PHONY: download-features-all
download-features-all: $(INSTALLED) ## download every unit of each layer of DNN=NAME into <data root>/features_all (opt-in, large)
	$(BHSCORE) download features-all $(if $(DNN),--dnn '$(DNN)') --settings $(SETTINGS) $(DOWNLOAD_FLAGS)
