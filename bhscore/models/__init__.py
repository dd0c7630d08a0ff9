"""Network architectures that neither torchvision nor timm provides (used by the paper's settings).

Address them in a model spec as ``bhscore.models.cornet:cornet_z`` (``module:function``).
"""

from bhscore.models.cornet import cornet_r, cornet_s, cornet_z

__all__ = ["cornet_z", "cornet_r", "cornet_s"]
