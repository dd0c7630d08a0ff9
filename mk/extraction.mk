# Feature extraction (bhscore/extraction/; feature_extraction/README.md).
#   make layers MODEL=torchvision:resnet18                     list a model's modules and output shapes
#   make extract DNN=ResNet-18 IMAGES=stimuli/test SPLIT=ImageNetTest
#   make extract-caffe DNN=AlexNet IMAGES=stimuli/test SPLIT=ImageNetTest   (needs Docker)
# Extra flags go in EXTRACT_FLAGS, e.g. EXTRACT_FLAGS='--device cuda --batch-size 64'.
MODEL         ?= torchvision:resnet18
DNN           ?=
IMAGES        ?=
SPLIT         ?= ImageNetTest
EXTRACT_FLAGS ?=
CAFFE_IMAGE   ?= bhscore-caffe:latest

.PHONY: layers extract extract-caffe caffe-image bench-extraction

define _need
	@test -n "$($(1))" || { echo "make $@: set $(1)=... ($(2))" >&2; exit 2; }
endef

layers: $(INSTALLED) ## list the modules of MODEL (layer names for extraction) with output shapes
	$(BHSCORE) layers --settings $(SETTINGS) --model '$(MODEL)'

extract: $(INSTALLED) ## extract features of DNN for the images in IMAGES into the SPLIT features tree (PyTorch)
	$(call _need,DNN,a DNN name of the settings file)
	$(call _need,IMAGES,a directory of stimulus images)
	$(BHSCORE) extract --settings $(SETTINGS) --dnn '$(DNN)' --images '$(IMAGES)' --split $(SPLIT) $(EXTRACT_FLAGS)

caffe-image: ## build the CPU Caffe Docker image used by extract-caffe
	docker build -t $(CAFFE_IMAGE) feature_extraction/caffe

extract-caffe: $(INSTALLED) ## extract features of a Caffe DNN in Docker (DNN=..., IMAGES=..., SPLIT=...)
	$(call _need,DNN,a DNN name of the settings file)
	$(call _need,IMAGES,a directory of stimulus images)
	docker build -q -t $(CAFFE_IMAGE) feature_extraction/caffe
	$(BHSCORE) extract --settings $(SETTINGS) --backend caffe --docker-image $(CAFFE_IMAGE) --dnn '$(DNN)' \
	  --images '$(IMAGES)' --split $(SPLIT) $(EXTRACT_FLAGS)

bench-extraction: $(INSTALLED) ## images/s of torchvision ResNet-18 feature extraction (CPU, and GPU if present)
	$(PY) bench/bench_extraction.py
