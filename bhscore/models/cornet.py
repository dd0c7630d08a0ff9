"""CORnet-Z, CORnet-R and CORnet-S (Kubilius et al. 2018, 2019), written from the published description.

The three networks have four "areas" V1, V2, V4 and IT followed by a decoder (average pooling and a linear
readout to the 1000 ImageNet classes):

- **CORnet-Z**: each area is one convolution (V1: 7x7 stride 2, 64 channels; V2/V4/IT: 3x3, 128/256/512
  channels), a ReLU and a 3x3 stride-2 max-pool.
- **CORnet-R**: each area is recurrent. At every time step an area takes the previous area's current output,
  applies an input convolution (V1: 7x7 stride 4; others 3x3 stride 2) + GroupNorm(32) + ReLU, adds its own
  state and applies a 3x3 convolution + GroupNorm + ReLU, whose result is both the new state and the output.
  At the first step only V1 has an input; the higher areas start from zeros. Five steps; the decoder reads
  IT's last output.
- **CORnet-S**: V1 is two convolutions (7x7 stride 2, then a max-pool and a 3x3), each with BatchNorm and
  ReLU. V2, V4 and IT (128/256/512 channels) are recurrent bottleneck blocks unrolled 2, 4 and 2 times: a
  1x1 input convolution, then per step a 1x1 expansion (4x), a 3x3 convolution (stride 2 on the first step),
  a 1x1 projection, each with its own BatchNorm per step, and a residual connection (a strided 1x1
  convolution + BatchNorm on the first step, identity afterwards) followed by a ReLU.

Every area ends in an identity module ``output`` so its output can be addressed by name (``V1.output``);
the decoder has ``avgpool``, ``flatten``, ``linear``. Module names follow the authors' released weights
(``cornet_z-5c427c9c.pth``, ``cornet_r-5930a990.pth``, ``cornet_s-1d3f7974.pth``), whose state dicts load
unchanged once their ``module.`` prefix is stripped (the extraction loader does that).

In CORnet-R and CORnet-S the recurrent modules run several times per forward pass (``V1.output`` of
CORnet-R five times); feature extraction must say which call it keeps (``call='last'`` in the paper's
settings).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["cornet_z", "cornet_r", "cornet_s", "CORnetZ", "CORnetR", "CORnetS", "WEIGHTS_URL"]

#: Where the authors' weights are published (download them yourself; extraction never fetches them).
WEIGHTS_URL = {
    "z": "https://s3.amazonaws.com/cornet-models/cornet_z-5c427c9c.pth",
    "r": "https://s3.amazonaws.com/cornet-models/cornet_r-5930a990.pth",
    "s": "https://s3.amazonaws.com/cornet-models/cornet_s-1d3f7974.pth",
}


class _Identity(nn.Module):
    """Passes its input through; exists so a block's output has a module name for hooks."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _decoder(with_output: bool) -> nn.Module:
    parts = [("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("linear", nn.Linear(512, 1000))]
    if with_output:
        parts.append(("output", _Identity()))
    decoder = nn.Sequential()
    for name, module in parts:
        decoder.add_module(name, module)
    return decoder


# -------------------------------------------------------------------------------------------------
# CORnet-Z
# -------------------------------------------------------------------------------------------------


class _AreaZ(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2)
        self.nonlin = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.output = _Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.pool(self.nonlin(self.conv(x))))


class CORnetZ(nn.Module):
    """CORnet-Z: four convolution + ReLU + max-pool areas and a linear decoder.

    Input (N, 3, H, W) -> logits (N, 1000).
    """

    input_size = 224

    def __init__(self):
        super().__init__()
        self.V1 = _AreaZ(3, 64, kernel_size=7, stride=2)
        self.V2 = _AreaZ(64, 128)
        self.V4 = _AreaZ(128, 256)
        self.IT = _AreaZ(256, 512)
        self.decoder = _decoder(with_output=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.IT(self.V4(self.V2(self.V1(x)))))


# -------------------------------------------------------------------------------------------------
# CORnet-R
# -------------------------------------------------------------------------------------------------


class _AreaR(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1):
        super().__init__()
        self.out_channels = c_out
        self.conv_input = nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2)
        self.norm_input = nn.GroupNorm(32, c_out)
        self.nonlin_input = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(32, c_out)
        self.nonlin1 = nn.ReLU(inplace=True)
        self.output = _Identity()

    def out_hw(self, h: int, w: int) -> tuple[int, int]:
        """Spatial size of this area's output for an input of size (h, w)."""
        k, s, p = self.conv_input.kernel_size[0], self.conv_input.stride[0], self.conv_input.padding[0]
        return (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1

    def forward(self, x: torch.Tensor | None, state: torch.Tensor | None, zeros_like: tuple) -> torch.Tensor:
        """One time step; ``x`` None means no input yet (zeros of shape ``zeros_like``). Returns the output,
        which is also the area's next state."""
        if x is None:
            drive = torch.zeros(zeros_like, dtype=self.conv1.weight.dtype, device=self.conv1.weight.device)
        else:
            drive = self.nonlin_input(self.norm_input(self.conv_input(x)))
        if state is not None:
            drive = drive + state
        return self.output(self.nonlin1(self.norm1(self.conv1(drive))))


class CORnetR(nn.Module):
    """CORnet-R: four recurrent areas unrolled ``times`` steps, then a linear decoder.

    Within a step the areas update in order V1, V2, V4, IT, each reading the previous area's output of the
    same step (the image for V1); at step 0 the areas above V1 have no input and start from zeros.
    Input (N, 3, H, W) -> logits (N, 1000).
    """

    input_size = 224

    def __init__(self, times: int = 5):
        super().__init__()
        self.times = times
        self.V1 = _AreaR(3, 64, kernel_size=7, stride=4)
        self.V2 = _AreaR(64, 128, stride=2)
        self.V4 = _AreaR(128, 256, stride=2)
        self.IT = _AreaR(256, 512, stride=2)
        self.decoder = _decoder(with_output=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        areas = [self.V1, self.V2, self.V4, self.IT]
        n, _, h, w = x.shape
        shapes = []
        for area in areas:
            h, w = area.out_hw(h, w)
            shapes.append((n, area.out_channels, h, w))
        states = [None] * len(areas)
        for t in range(self.times):
            below = x
            for i, area in enumerate(areas):
                inp = below if (t > 0 or i == 0) else None
                states[i] = area(inp, states[i], shapes[i])
                below = states[i]
        return self.decoder(states[-1])


# -------------------------------------------------------------------------------------------------
# CORnet-S
# -------------------------------------------------------------------------------------------------


class _AreaS(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, c_out: int, times: int):
        super().__init__()
        self.times = times
        wide = c_out * self.expansion
        self.conv_input = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.skip = nn.Conv2d(c_out, c_out, 1, stride=2, bias=False)
        self.norm_skip = nn.BatchNorm2d(c_out)
        self.conv1 = nn.Conv2d(c_out, wide, 1, bias=False)
        self.nonlin1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(wide, wide, 3, stride=2, padding=1, bias=False)
        self.nonlin2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(wide, c_out, 1, bias=False)
        self.nonlin3 = nn.ReLU(inplace=True)
        self.output = _Identity()
        for t in range(times):  # one set of normalisations per step
            self.add_module(f"norm1_{t}", nn.BatchNorm2d(wide))
            self.add_module(f"norm2_{t}", nn.BatchNorm2d(wide))
            self.add_module(f"norm3_{t}", nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_input(x)
        out = x
        for t in range(self.times):
            first = t == 0
            residual = self.norm_skip(self.skip(x)) if first else x
            # the 3x3 convolution's weights are shared over steps; only the first step downsamples
            self.conv2.stride = (2, 2) if first else (1, 1)
            y = self.nonlin1(getattr(self, f"norm1_{t}")(self.conv1(x)))
            y = self.nonlin2(getattr(self, f"norm2_{t}")(self.conv2(y)))
            y = getattr(self, f"norm3_{t}")(self.conv3(y))
            x = self.nonlin3(y + residual)
            out = self.output(x)
        return out


class _V1S(nn.Sequential):
    def __init__(self):
        super().__init__()
        self.add_module("conv1", nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False))
        self.add_module("norm1", nn.BatchNorm2d(64))
        self.add_module("nonlin1", nn.ReLU(inplace=True))
        self.add_module("pool", nn.MaxPool2d(3, stride=2, padding=1))
        self.add_module("conv2", nn.Conv2d(64, 64, 3, padding=1, bias=False))
        self.add_module("norm2", nn.BatchNorm2d(64))
        self.add_module("nonlin2", nn.ReLU(inplace=True))
        self.add_module("output", _Identity())


class CORnetS(nn.Module):
    """CORnet-S: a two-convolution V1, recurrent bottleneck areas V2 (2 steps), V4 (4), IT (2), decoder.

    Input (N, 3, H, W) -> logits (N, 1000).
    """

    input_size = 224

    def __init__(self):
        super().__init__()
        self.V1 = _V1S()
        self.V2 = _AreaS(64, 128, times=2)
        self.V4 = _AreaS(128, 256, times=4)
        self.IT = _AreaS(256, 512, times=2)
        self.decoder = _decoder(with_output=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.IT(self.V4(self.V2(self.V1(x)))))


# -------------------------------------------------------------------------------------------------
# entry points (``bhscore.models.cornet:cornet_z`` in settings.json)
# -------------------------------------------------------------------------------------------------


def cornet_z() -> CORnetZ:
    """CORnet-Z with random weights (load ``cornet_z-5c427c9c.pth`` through the extraction ``weights``)."""
    return CORnetZ()


def cornet_r(times: int = 5) -> CORnetR:
    """CORnet-R unrolled ``times`` steps, random weights (the authors' file: ``cornet_r-5930a990.pth``)."""
    return CORnetR(times=times)


def cornet_s() -> CORnetS:
    """CORnet-S with random weights (the authors' file: ``cornet_s-1d3f7974.pth``)."""
    return CORnetS()


cornet_z.weights_url = WEIGHTS_URL["z"]
cornet_r.weights_url = WEIGHTS_URL["r"]
cornet_s.weights_url = WEIGHTS_URL["s"]
