"""``bhscore layers``: list a model's modules and their output shapes, to choose layers for extraction."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "layers",
        parents=[common],
        help="list a model's modules (layer names for extraction) with their output shapes",
        description=(
            "List every module of a model (named_modules()) with its output shape for one input image and how "
            "often it runs per forward pass. Use the names in 'bhscore extract --layers' or in a DNN's "
            "'modules' in settings.json; '<module>_abs' is the absolute value of a module's output."
        ),
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="model spec: torchvision:<name>, timm:<name>, or module:function")
    src.add_argument("--dnn", help="a DNN of the settings file (uses its model; marks its layers)")
    p.add_argument("--input-size", type=int, default=224, metavar="PX", help="input image size (default 224)")
    p.add_argument(
        "--weights", default=None, help="weights to load (default: random; shapes do not depend on weights)"
    )
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, auto")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from bhscore.devices import resolve_device
    from bhscore.errors import UserError
    from bhscore.extraction import format_layers, list_layers, load_model, resolve_layers

    used = {}
    if args.dnn:
        from bhscore.settings import load_settings

        d = load_settings(args.settings).dnn(args.dnn)
        if d.model is None:
            raise UserError(f"DNN {args.dnn!r} has no 'model' in the settings (not available in PyTorch)")
        spec = d.model
    else:
        spec = args.model
    loaded = load_model(spec, args.weights)
    if args.dnn:
        for s in resolve_layers(loaded.model, d.layers, d.modules, model_name=spec):
            used[s.module] = ", ".join(x for x in (used.get(s.module), s.name) if x)
    infos = list_layers(loaded.model, args.input_size, device=str(resolve_device(args.device)))
    print(f"# {spec}: {len(infos)} modules; model input size {loaded.input_size[0]}x{loaded.input_size[1]}")
    print(format_layers(infos, args.input_size, used or None))
    return 0
