"""PyTorch models by name, and their weights from local files.

A model spec is ``torchvision:<name>``, ``timm:<name>[.<tag>]`` or a Python entry point
``package.module:function`` / ``path/to/file.py:function`` returning an ``nn.Module``. Weights come from the
library's own cache or a local file, never from the network unless ``download=True``; a missing file raises
an error naming where to put it. No weights means random weights drawn with ``seed``.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bhscore.errors import CorruptFileError, MissingDataError, UserError
from bhscore.extraction.images import IMAGENET_MEAN, IMAGENET_STD
from bhscore.extraction.lazy_torch import require_torch, torch

if TYPE_CHECKING:
    from torch import nn

WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt", ".tar")


@dataclass
class LoadedModel:
    """A model ready for extraction and what its preprocessing needs.

    Attributes
    ----------
    model : nn.Module
        In eval mode.
    spec : str
        The model spec, or the class name of a module passed directly.
    input_size : (int, int)
        (H, W) that the ``paper`` and ``caffe`` presets resize to.
    mean, std : tuple of 3 floats
        RGB normalisation used by ``paper``.
    transform : callable or None
        The model's own preprocessing (``model`` preset).
    weights : str
        Where the weights came from, for the log.
    """

    model: nn.Module
    spec: str
    input_size: tuple[int, int] = (224, 224)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    transform: Callable[[Any], Any] | None = None
    weights: str = "random"

    @classmethod
    def wrap(cls, model: nn.Module) -> LoadedModel:
        """Describe a module built by the caller (``input_size``/``mean``/``std`` attributes are honoured)."""
        size = getattr(model, "input_size", 224)
        return cls(
            model.eval(),
            type(model).__name__,
            (size, size) if isinstance(size, int) else tuple(size),
            tuple(getattr(model, "mean", IMAGENET_MEAN)),
            tuple(getattr(model, "std", IMAGENET_STD)),
            getattr(model, "transform", None),
            "as given",
        )


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Random initialisation drawn from ``seed`` without touching the caller's global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def is_weights_file(weights: str) -> bool:
    """Whether a ``weights`` value names a file (rather than a library's weights name)."""
    return "/" in weights or os.sep in weights or weights.lower().endswith(WEIGHT_SUFFIXES) or Path(weights).is_file()


def no_weights(weights: str | None) -> bool:
    """Whether a ``weights`` value asks for random weights (None, '', 'none', 'random')."""
    return weights is None or weights.lower() in ("", "none", "random")


def load_state_dict_file(model: nn.Module, path: str | os.PathLike, what: str = "model") -> None:
    """Load a checkpoint file into ``model`` (strict).

    Accepts a plain state dict or a checkpoint holding one under ``state_dict`` or ``model`` (``.pth``/
    ``.pt``/``.bin``/``.tar``), or a ``.safetensors`` file; a ``module.`` prefix (``DataParallel``) is removed.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(path, what="weights file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CorruptFileError(path, f"not a PyTorch checkpoint ({type(e).__name__}: {e})") from None
    if isinstance(sd, dict):
        for key in ("state_dict", "model"):
            if key in sd and isinstance(sd[key], dict):
                sd = sd[key]
                break
    if not isinstance(sd, dict) or not sd:
        raise CorruptFileError(path, "holds no state dict")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise UserError(
            f"{path} does not fit {what}: {len(missing)} missing key(s) {missing[:4]}, "
            f"{len(unexpected)} unexpected key(s) {unexpected[:4]}"
        )


def _torch_hub_checkpoint(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def close_names(name: str, choices: Iterable[str], n: int = 5) -> str:
    """`` Close names: a, b.`` (up to ``n`` names of ``choices`` like ``name``), or ``""`` when none is close."""
    close = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)
    return f" Close names: {', '.join(close)}." if close else ""


def _load_torchvision(name: str, weights: str | None, download: bool, seed: int) -> LoadedModel:
    import torchvision
    from torchvision.models import get_model, get_model_weights

    available = torchvision.models.list_models()
    if name not in available:
        raise UserError(f"unknown torchvision model {name!r}.{close_names(name, available)}")
    try:
        enum = get_model_weights(name)
    except (ValueError, KeyError):
        enum = None
    default = getattr(enum, "DEFAULT", None) if enum is not None else None
    chosen = None
    if no_weights(weights):
        with _seeded(seed):
            model = get_model(name, weights=None)
        source = f"random (seed {seed})"
    elif is_weights_file(weights):
        with _seeded(seed):
            model = get_model(name, weights=None)
        load_state_dict_file(model, weights, f"torchvision:{name}")
        source = str(weights)
    else:
        member = weights.split(".")[-1]
        if enum is None or member not in enum.__members__:
            choices = list(enum.__members__) if enum is not None else []
            raise UserError(
                f"torchvision:{name} has no weights {weights!r}; choose one of {', '.join(choices) or '(none)'}, "
                "a file path, or none"
            )
        chosen = enum[member]
        cached = _torch_hub_checkpoint(chosen.url)
        if not cached.exists() and not download:
            raise MissingDataError(
                cached,
                how=f"download {chosen.url} to that path (or pass the file as weights, or allow downloads: --download)",
                what=f"weights {enum.__name__}.{member} in torchvision's cache",
            )
        model = get_model(name, weights=chosen)
        source = f"{enum.__name__}.{member}"
    ref = chosen or default
    transform = ref.transforms() if ref is not None else None
    size = tuple(getattr(transform, "crop_size", [224]))
    return LoadedModel(
        model.eval(),
        f"torchvision:{name}",
        (int(size[0]), int(size[-1])),
        tuple(getattr(transform, "mean", IMAGENET_MEAN)),
        tuple(getattr(transform, "std", IMAGENET_STD)),
        transform,
        source,
    )


def _timm_cached_file(name: str) -> tuple[str | None, str]:
    """(cached weights file or None, where to get it) for a timm model name with tag."""
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        return None, "(timm lists no pretrained weights for it)"
    hub = getattr(cfg, "hf_hub_id", None)
    if hub:
        from huggingface_hub import try_to_load_from_cache

        for fname in ("model.safetensors", "pytorch_model.bin", getattr(cfg, "hf_hub_filename", None)):
            if fname:
                found = try_to_load_from_cache(repo_id=hub, filename=fname)
                if isinstance(found, str):
                    return found, ""
        where = f"https://huggingface.co/{hub}/resolve/main/model.safetensors"
    else:
        where = ""
    if getattr(cfg, "url", None):
        cached = _torch_hub_checkpoint(cfg.url)
        if cached.exists():
            return str(cached), ""
        where = where or cfg.url
    return None, where


def _load_timm(name: str, weights: str | None, download: bool, seed: int) -> LoadedModel:
    import timm
    from timm.data import create_transform, resolve_data_config

    base = name.split(".")[0]
    if not timm.is_model(base):
        raise UserError(f"unknown timm model {base!r}.{close_names(base, timm.list_models())}")
    if no_weights(weights):
        with _seeded(seed):
            model = timm.create_model(name, pretrained=False)
        source = f"random (seed {seed})"
    elif is_weights_file(weights):
        path = Path(weights)
        if not path.is_file():
            raise MissingDataError(path, what="weights file")
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(path)})
        source = str(path)
    elif weights.lower() in ("default", "pretrained", "true"):
        found, where = _timm_cached_file(name)
        if found is not None:
            model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": found})
            source = found
        elif download:
            model = timm.create_model(name, pretrained=True)
            source = f"timm pretrained {name}"
        else:
            raise UserError(
                f"the pretrained weights of timm:{name} are not in the local cache and downloads are off. "
                f"Download {where} and give that file as the weights (settings 'weights' or --weights PATH), "
                "or allow downloads (--download)"
            )
    else:
        raise UserError(f"timm:{name}: weights must be 'DEFAULT' (pretrained), a file path or none; got {weights!r}")
    model.eval()
    cfg = resolve_data_config({}, model=model)
    _, h, w = cfg["input_size"]
    return LoadedModel(
        model, f"timm:{name}", (int(h), int(w)), tuple(cfg["mean"]), tuple(cfg["std"]), create_transform(**cfg), source
    )


def _import_entry_point(spec: str) -> Callable[[], Any]:
    mod_name, _, func_name = spec.rpartition(":")
    if not mod_name or not func_name:
        raise UserError(
            f"model spec {spec!r} is not 'torchvision:<name>', 'timm:<name>' or 'module:function' / 'file.py:function'"
        )
    try:
        if mod_name.endswith(".py"):
            path = Path(mod_name)
            if not path.is_file():
                raise MissingDataError(path, what="model definition file")
            loader_spec = importlib.util.spec_from_file_location(f"_bhscore_model_{path.stem}", path)
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[loader_spec.name] = module
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        raise UserError(f"model spec {spec!r}: cannot import {mod_name!r} ({e})") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        public = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        raise UserError(f"model spec {spec!r}: {mod_name} has no function {func_name!r}.{close_names(func_name, public)}")
    return func


def _load_entry_point(spec: str, weights: str | None, seed: int) -> LoadedModel:
    from torch import nn

    func = _import_entry_point(spec)
    with _seeded(seed):
        model = func()
    if not isinstance(model, nn.Module):
        raise UserError(f"model spec {spec!r} returned {type(model).__name__}, not a torch.nn.Module")
    loaded = LoadedModel.wrap(model)
    loaded.spec = spec
    if no_weights(weights):
        loaded.weights = f"random (seed {seed})"
        return loaded
    if not is_weights_file(weights):
        raise UserError(f"model {spec!r} takes weights from a file; got {weights!r}")
    path = Path(weights)
    if not path.is_file():
        url = getattr(func, "weights_url", None)
        raise MissingDataError(path, how=f"download {url} to that path" if url else None, what="weights file")
    load_state_dict_file(model, path, spec)
    loaded.weights = str(path)
    return loaded


def load_model(spec: str, weights: str | None = None, *, download: bool = False, seed: int = 0) -> LoadedModel:
    """Build a model from its spec and load its weights (from local files only unless ``download``).

    Parameters
    ----------
    spec : str
        ``torchvision:<name>``, ``timm:<name>[.<tag>]``, ``package.module:function`` or ``file.py:function``.
    weights : str, optional
        None / 'none' / 'random': random weights drawn with ``seed``. A file path: a checkpoint. Otherwise a
        torchvision weights name (``IMAGENET1K_V1``, ``DEFAULT``) or, for timm, ``DEFAULT`` (the tag's
        pretrained weights), looked up in the library's local cache.
    download : bool
        Let the library fetch missing weights from the network.
    seed : int
        Seed of the random initialisation.

    Returns
    -------
    LoadedModel
    """
    require_torch()
    kind, _, rest = spec.partition(":")
    if kind == "torchvision" and rest:
        return _load_torchvision(rest, weights, download, seed)
    if kind == "timm" and rest:
        return _load_timm(rest, weights, download, seed)
    return _load_entry_point(spec, weights, seed)
