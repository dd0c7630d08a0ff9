#!/usr/bin/env python3
"""Extract DNN features with PyTorch: a thin wrapper over ``bhscore extract`` (same arguments).

Examples
--------
python feature_extraction/extract_features_pytorch.py --dnn ResNet-18 --images stimuli/test --split ImageNetTest
python feature_extraction/extract_features_pytorch.py --model torchvision:resnet18 --weights IMAGENET1K_V1 \\
    --layers conv1_abs,layer1,layer2,layer3,layer4,fc --images stimuli/test --out features/resnet18
"""

import sys

from bhscore.cli import main

if __name__ == "__main__":
    sys.exit(main(["extract", *sys.argv[1:]]))
