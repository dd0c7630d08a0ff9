"""The one device resolver (bhscore.devices), used by the solver and the feature extraction."""

from __future__ import annotations

import pytest
import torch

from bhscore.devices import DeviceUnavailableError, resolve_device
from bhscore.errors import UserError


@pytest.mark.parametrize("spelling", [None, "", "auto"])
def test_auto_is_cuda_when_available_else_cpu(spelling):
    assert resolve_device(spelling) == torch.device("cuda" if torch.cuda.is_available() else "cpu")


def test_names_and_devices_pass_through():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) is not None and str(resolve_device(torch.device("cpu"))) == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_a_user_error_and_a_value_error(name):
    with pytest.raises(DeviceUnavailableError, match="CUDA is not available") as info:
        resolve_device(name)
    assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)


def test_solver_and_extraction_share_the_resolver():
    from bhscore import ridge
    from bhscore.extraction import torch_backend

    assert ridge.resolve_device is resolve_device
    assert torch_backend.resolve_device is resolve_device
