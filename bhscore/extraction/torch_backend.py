"""Layers by module name, forward hooks, and the PyTorch backend of the extraction driver.

Layers are modules by name (``named_modules()``): :func:`list_layers` shows them with their output shapes;
``<layer>_abs`` is the absolute value of the module's output (the paper's first layer, taken before the
nonlinearity: hooks copy the output at once, so a later in-place ReLU cannot change it). A module run more
than once per forward pass (recurrent blocks) must be told which call to keep: ``call='first'``, ``'last'``
or ``'all'`` (the calls' outputs stacked on a new leading axis).
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bhscore.devices import resolve_device
from bhscore.errors import UserError
from bhscore.extraction.lazy_torch import require_torch, torch
from bhscore.extraction.models import close_names

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

CALLS = ("first", "last", "all")


@dataclass(frozen=True)
class LayerSpec:
    """A feature layer: its name in the tree, the module whose output it is, and whether to take abs."""

    name: str
    module: str
    absolute: bool = False


def parse_layer_args(items: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """Split ``['conv1_abs', 'V1_output=V1.output']`` into layer names and a layer -> module mapping."""
    layers, modules = [], {}
    for item in items:
        name, sep, module = item.partition("=")
        name = name.strip()
        if not name:
            continue
        layers.append(name)
        if sep:
            modules[name] = module.strip()
    return layers, modules


def resolve_layers(
    model: nn.Module, layers: Sequence[str], modules: Mapping[str, str] | None = None, *, model_name: str = "the model"
) -> list[LayerSpec]:
    """Map layer names to modules of ``model``.

    ``modules`` maps a layer name to a module name (``named_modules()``); by default a layer is the module
    of the same name, and ``<name>_abs`` the absolute value of module ``<name>``. An unknown module raises
    :class:`UserError` listing close names.
    """
    names = {n for n, _ in model.named_modules() if n}
    specs, bad = [], []
    for layer in layers:
        if "/" in layer:
            raise UserError(f"layer name {layer!r} contains '/'; use ':' (it names a directory)")
        absolute = layer.endswith("_abs")
        module = (modules or {}).get(layer) or (layer[: -len("_abs")] if absolute else layer)
        if module not in names:
            bad.append(f"  - layer {layer!r}: no module {module!r}.{close_names(module, names)}")
        specs.append(LayerSpec(layer, module, absolute))
    if bad:
        raise UserError(
            f"unknown layer(s) of {model_name}:\n" + "\n".join(bad) + "\n  list the modules with: bhscore layers --model ..."
        )
    return specs


def _single_tensor(out: Any, module: str) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    kind = type(out).__name__
    raise UserError(
        f"module {module!r} returns a {kind}, not a tensor; choose one of its submodules (bhscore layers lists them)"
    )


@contextlib.contextmanager
def _hooks(model: nn.Module, hooks: Mapping[str, Callable]) -> Iterator[None]:
    """Register forward hooks by module name; always removed on exit."""
    modules = dict(model.named_modules())
    handles = [modules[name].register_forward_hook(fn) for name, fn in hooks.items()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@dataclass
class LayerInfo:
    """One module of a model: name, class, output shape for one image (None: not run), calls per forward."""

    name: str
    type: str
    shape: tuple[int, ...] | str | None
    calls: int


def list_layers(model: nn.Module, input_size: int | tuple[int, int] = 224, device: str = "cpu") -> list[LayerInfo]:
    """Every named module with its output shape (without the batch axis) for one input image.

    Parameters
    ----------
    model : nn.Module
    input_size : int or (H, W)
    device : str

    Returns
    -------
    list of LayerInfo, in ``named_modules()`` order
    """
    require_torch()
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    shapes: dict[str, Any] = {}
    calls: dict[str, int] = defaultdict(int)

    def make(name: str) -> Callable:
        def hook(_m, _i, out):
            calls[name] += 1
            if name not in shapes:
                if isinstance(out, torch.Tensor):
                    shapes[name] = tuple(out.shape[1:])
                elif isinstance(out, (tuple, list)):
                    shapes[name] = "(" + ", ".join(
                        str(tuple(o.shape[1:])) if isinstance(o, torch.Tensor) else type(o).__name__ for o in out
                    ) + ")"
                else:
                    shapes[name] = type(out).__name__
        return hook

    named = [(n, m) for n, m in model.named_modules() if n]
    model = model.eval().to(device)
    with _hooks(model, {n: make(n) for n, _ in named}), torch.inference_mode():
        model(torch.zeros(1, 3, h, w, device=device))
    return [LayerInfo(n, type(m).__name__, shapes.get(n), calls.get(n, 0)) for n, m in named]


def format_layers(infos: Sequence[LayerInfo], input_size: int | tuple[int, int] = 224, used: Mapping[str, str] | None = None) -> str:
    """A table of :func:`list_layers` output (``used``: module -> layer names that map to it)."""
    size = input_size if isinstance(input_size, int) else "x".join(map(str, input_size))
    rows = [("module", "type", f"output shape ({size} input)", "calls", "units", "layer" if used else "")]
    for info in infos:
        shape = info.shape
        units = str(int(np.prod(shape))) if isinstance(shape, tuple) else ""
        shape_s = "not run" if shape is None else (str(shape) if isinstance(shape, tuple) else shape)
        calls = "" if info.calls <= 1 else str(info.calls)
        rows.append((info.name, info.type, shape_s, calls, units, (used or {}).get(info.name, "")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows)


class TorchBackend:
    """Runs a PyTorch model with forward hooks on the modules of the requested layers.

    Parameters
    ----------
    model : nn.Module
    specs : list of LayerSpec
    device : str
    call : {'first', 'last', 'all'} or None
        Which output to keep for a module that runs more than once per forward pass; None refuses such
        modules with an error (never a silent choice).

    Notes
    -----
    Hooks live only during one forward pass and are removed afterwards (also on error). Each hook copies the
    kept units of its module's output at once (``index_select`` or ``clone``), so in-place operations later
    in the network (``ReLU(inplace=True)``, ``x += skip``) cannot alter what is stored.
    """

    def __init__(self, model: nn.Module, specs: Sequence[LayerSpec], device: str = "cpu", call: str | None = None):
        require_torch()
        if call is not None and call not in CALLS:
            raise UserError(f"call must be one of {', '.join(CALLS)}, got {call!r}")
        require_torch()
        self.device = str(resolve_device(device))
        self.model = model.eval().to(self.device)
        self.specs = list(specs)
        self.call = call
        self.by_module: dict[str, list[LayerSpec]] = defaultdict(list)
        for s in self.specs:
            self.by_module[s.module].append(s)
        self.calls: dict[str, int] | None = None  # calls per forward pass, from the probe

    def layer_shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """Per-image output shape of every layer; with ``call='all'`` a leading axis counts the calls."""
        shapes: dict[str, tuple[int, ...]] = {}
        calls: dict[str, int] = defaultdict(int)

        def make(module: str) -> Callable:
            def hook(_m, _i, out):
                calls[module] += 1
                shape = tuple(_single_tensor(out, module).shape[1:])
                if shapes.setdefault(module, shape) != shape and self.call == "all":
                    raise UserError(f"module {module!r} returns different shapes on different calls; call='all' needs one")
            return hook

        with _hooks(self.model, {m: make(m) for m in self.by_module}), torch.inference_mode():
            self.model(torch.zeros((1, *input_shape), device=self.device))
        never = [m for m in self.by_module if calls[m] == 0]
        if never:
            raise UserError(f"module(s) {never} are not run in a forward pass (eval mode); choose other layers")
        repeated = {m: c for m, c in calls.items() if c > 1}
        if repeated and self.call is None:
            desc = ", ".join(f"{m!r} ({c} calls)" for m, c in repeated.items())
            raise UserError(
                f"module(s) {desc} run more than once per forward pass (recurrent blocks); choose which output to "
                "keep: call='first', 'last' or 'all' (--call, or \"call\" in the DNN's settings)"
            )
        for m, c in repeated.items():
            log.info("module %r runs %d times per forward pass; keeping call=%s", m, c, self.call)
        self.calls = dict(calls)
        out = {}
        for m, specs in self.by_module.items():
            shape = shapes[m]
            if self.call == "all" and calls[m] > 1:
                shape = (calls[m], *shape)
            for s in specs:
                out[s.name] = shape
        return out

    def forward(self, batch: np.ndarray, index: Mapping[str, np.ndarray | None]) -> dict[str, np.ndarray]:
        """Kept units of every layer for a batch (N, 3, H, W) -> layer -> (N, k) float32."""
        if self.calls is None:
            self.layer_shapes(tuple(batch.shape[1:]))
        ix_t = {k: (torch.as_tensor(v, device=self.device) if v is not None else None) for k, v in index.items()}
        store: dict[str, list[torch.Tensor]] = {s.name: [] for s in self.specs}
        calls: dict[str, int] = defaultdict(int)
        keep_all = self.call == "all"

        def make(module: str, specs: list[LayerSpec]) -> Callable:
            def hook(_m, _i, out):
                calls[module] += 1
                if self.call == "first" and calls[module] > 1:
                    return
                t = _single_tensor(out, module).detach()
                flat = t.reshape(t.shape[0], -1)
                for s in specs:
                    ix = ix_t.get(s.name)
                    # a copy at once: later in-place operations must not reach the stored values
                    v = flat.clone() if (keep_all or ix is None) else flat.index_select(1, ix)
                    if s.absolute:
                        v.abs_()
                    v = v.to("cpu", torch.float32)
                    if keep_all:
                        store[s.name].append(v)
                    else:
                        store[s.name] = [v]
            return hook

        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        with _hooks(self.model, {m: make(m, sp) for m, sp in self.by_module.items()}), torch.inference_mode():
            self.model(x)
        changed = {m: c for m, c in calls.items() if c != self.calls.get(m)}
        if changed:
            raise UserError(f"calls per forward pass changed between inputs: {changed} vs {self.calls}")
        result = {}
        for s in self.specs:
            v = torch.cat(store[s.name], dim=1) if len(store[s.name]) > 1 else store[s.name][0]
            ix = index.get(s.name)
            if keep_all and ix is not None:
                v = v[:, torch.as_tensor(ix)]
            result[s.name] = v.numpy()
        return result
