"""Caffe network definitions (``.prototxt``): a small text-format parser and the in-place rewrite.

Caffe runs element-wise layers (ReLU, BatchNorm, Scale, Dropout) *in place*: their ``top`` equals their
``bottom``, so after a forward pass the blob ``conv1`` holds ``relu(conv1)`` and the raw convolution output is
gone. The paper's first layer of every DNN is ``<first conv>_abs``, the absolute value of the convolution
output *before* its nonlinearity, so the raw value must survive. :func:`rewrite_inplace` gives every
in-place step its own output blob and records, for every original blob name, the list of its versions:

``versions['conv1'] == ['conv1', 'conv1/relu1']``: ``versions[b][0]`` is the value the producing layer wrote
(used for ``<b>_abs``), ``versions[b][-1]`` the value after the whole in-place chain, i.e. what
``net.blobs[b]`` held in the unmodified network (used for the layer ``b`` itself). Layer weights are matched
by layer name, never by blob name, so the rewritten definition loads the same ``.caffemodel``.

This module uses only the standard library (Python >= 3.8) so the Caffe container can import it.

Examples
--------
>>> net = parse(open("deploy.prototxt").read())          # doctest: +SKIP
>>> new, versions = rewrite_inplace(net)                   # doctest: +SKIP
>>> open("deploy_rewritten.prototxt", "w").write(format_message(new))   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

__all__ = [
    "Field",
    "Message",
    "PrototxtError",
    "parse",
    "format_message",
    "rewrite_inplace",
    "input_blob",
    "input_shape",
    "blob_for_layer",
]


class PrototxtError(ValueError):
    """A prototxt that cannot be parsed or rewritten; the message gives the line."""


@dataclass
class Field:
    """One ``key: value`` or ``key { ... }`` entry; ``quoted`` scalars are strings."""

    key: str
    value: str | Message
    quoted: bool = False


@dataclass
class Message:
    """An ordered list of fields (repeated keys allowed, as in protobuf)."""

    fields: list[Field] = field(default_factory=list)

    def all(self, key: str) -> list[str | Message]:
        """Values of every field named ``key``, in order."""
        return [f.value for f in self.fields if f.key == key]

    def get(self, key: str, default=None):
        """The first value of ``key`` (``default`` when absent)."""
        for f in self.fields:
            if f.key == key:
                return f.value
        return default


# -------------------------------------------------------------------------------------------------
# parsing
# -------------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n,;]+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<punct>[{}<>:\[\]])
  | (?P<word>[^\s{}<>:\[\]"',;\#]+)
    """,
    re.VERBOSE,
)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}


def _unquote(tok: str) -> str:
    body = tok[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens = []
    pos, line = 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise PrototxtError(f"line {line}: cannot parse near {text[pos:pos + 20]!r}")
        kind = m.lastgroup
        if kind not in ("ws", "comment"):
            tokens.append((kind, m.group(), line))
        line += m.group().count("\n")
        pos = m.end()
    return tokens


def parse(text: str) -> Message:
    """Parse protobuf text format (a ``.prototxt``) into a :class:`Message`.

    Comments are dropped; ``key: [a, b]`` lists become repeated fields.
    """
    tokens = _tokenize(text)
    pos = 0

    def parse_fields(closing: str | None) -> Message:
        nonlocal pos
        msg = Message()
        while True:
            if pos >= len(tokens):
                if closing is None:
                    return msg
                raise PrototxtError(f"unexpected end of file: missing {closing!r}")
            kind, tok, line = tokens[pos]
            if kind == "punct" and tok == closing:
                pos += 1
                return msg
            if kind != "word":
                raise PrototxtError(f"line {line}: expected a field name, got {tok!r}")
            key = tok
            pos += 1
            if pos < len(tokens) and tokens[pos][1] == ":":
                pos += 1
            if pos >= len(tokens):
                raise PrototxtError(f"line {line}: field {key!r} has no value")
            kind, tok, line = tokens[pos]
            if kind == "punct" and tok in "{<":
                pos += 1
                msg.fields.append(Field(key, parse_fields("}" if tok == "{" else ">")))
            elif kind == "punct" and tok == "[":
                pos += 1
                while tokens[pos][1] != "]":
                    k2, t2, _ = tokens[pos]
                    msg.fields.append(Field(key, _unquote(t2) if k2 == "string" else t2, k2 == "string"))
                    pos += 1
                pos += 1
            elif kind == "string":
                # adjacent string literals concatenate
                value = _unquote(tok)
                pos += 1
                while pos < len(tokens) and tokens[pos][0] == "string":
                    value += _unquote(tokens[pos][1])
                    pos += 1
                msg.fields.append(Field(key, value, True))
            elif kind == "word":
                msg.fields.append(Field(key, tok))
                pos += 1
            else:
                raise PrototxtError(f"line {line}: unexpected {tok!r} after {key!r}")

    return parse_fields(None)


def format_message(msg: Message, indent: int = 0) -> str:
    """Write a :class:`Message` back as protobuf text format."""
    pad = "  " * indent
    out = []
    for f in msg.fields:
        if isinstance(f.value, Message):
            out.append(f"{pad}{f.key} {{\n{format_message(f.value, indent + 1)}{pad}}}\n")
        else:
            out.append(f"{pad}{f.key}: {_quote(f.value) if f.quoted else f.value}\n")
    return "".join(out)


# -------------------------------------------------------------------------------------------------
# the network
# -------------------------------------------------------------------------------------------------


def _layers(net: Message) -> list[Message]:
    """The layer messages, new (``layer``) or legacy V1 (``layers``) syntax."""
    return [v for f in net.fields if f.key in ("layer", "layers") and isinstance(v := f.value, Message)]


def _is_train_only(layer: Message) -> bool:
    for inc in layer.all("include"):
        if isinstance(inc, Message) and str(inc.get("phase", "")).upper() == "TRAIN":
            return True
    return False


def rewrite_inplace(net: Message) -> tuple[Message, dict[str, list[str]]]:
    """Give every in-place layer its own output blob.

    Parameters
    ----------
    net : Message
        A parsed network definition (deploy prototxt).

    Returns
    -------
    new_net : Message
        A copy in which no layer writes a blob another layer already wrote; every ``bottom`` reads the
        version current at that point of the network, so the computation is unchanged.
    versions : dict of str to list of str
        Original blob name -> names of its successive versions; ``[0]`` is the producer's output and
        ``[-1]`` the value after all in-place layers (what the original ``net.blobs[name]`` held).

    Notes
    -----
    A new version of blob ``b`` written by layer ``L`` is named ``b/L`` (a numeric suffix is added if that
    name is taken). Layers included only in the TRAIN phase are left unchanged and do not count.
    """
    new = copy.deepcopy(net)
    taken = set()
    for layer in _layers(new):
        taken.update(str(v) for v in layer.all("top"))
        taken.update(str(v) for v in layer.all("bottom"))
    current: dict[str, str] = {}
    versions: dict[str, list[str]] = {}
    for name in new.all("input"):
        current[name] = name
        versions[name] = [name]

    for i, layer in enumerate(_layers(new)):
        if _is_train_only(layer):
            continue
        lname = str(layer.get("name", f"layer{i}"))
        for f in layer.fields:
            if f.key == "bottom":
                if f.value in current:  # else: produced by a TRAIN-only layer; Caffe itself will judge
                    f.value = current[f.value]
                    f.quoted = True
        for f in layer.fields:
            if f.key != "top":
                continue
            blob = f.value
            if blob in current:  # in place (or a later layer writing an existing name): a new version
                fresh = f"{blob}/{lname}"
                k = 1
                while fresh in taken:
                    k += 1
                    fresh = f"{blob}/{lname}_{k}"
                taken.add(fresh)
                f.value, f.quoted = fresh, True
                current[blob] = fresh
                versions[blob].append(fresh)
            else:
                current[blob] = blob
                versions[blob] = [blob]
    return new, versions


def input_blob(net: Message) -> str:
    """Name of the network's data blob (``input:`` or the first ``Input`` layer's top)."""
    names = net.all("input")
    if names:
        return str(names[0])
    for layer in _layers(net):
        if str(layer.get("type", "")).strip('"').lower() == "input":
            return str(layer.get("top"))
    raise PrototxtError("the network declares no input blob (neither 'input:' nor an Input layer)")


def input_shape(net: Message) -> tuple[int, ...]:
    """Declared shape of the data blob, e.g. ``(10, 3, 227, 227)``."""
    shape = net.get("input_shape")
    if isinstance(shape, Message):
        return tuple(int(d) for d in shape.all("dim"))
    dims = net.all("input_dim")
    if dims:
        return tuple(int(d) for d in dims)
    for layer in _layers(net):
        if str(layer.get("type", "")).lower() == "input":
            param = layer.get("input_param")
            shp = param.get("shape") if isinstance(param, Message) else None
            if isinstance(shp, Message):
                return tuple(int(d) for d in shp.all("dim"))
    raise PrototxtError("the network declares no input shape (input_shape, input_dim or Input layer)")


def blob_for_layer(layer: str, versions: dict[str, list[str]]) -> tuple[str, bool]:
    """The rewritten blob holding feature layer ``layer``, and whether to take its absolute value.

    Layer names use ``:`` where Caffe blob names have ``/`` (``fire2:concat`` is blob ``fire2/concat``).
    ``<blob>_abs`` is the producer's raw output; ``<blob>`` the value after its in-place layers.

    Raises
    ------
    KeyError
        No blob of that name; the message lists close names.
    """
    absolute = layer.endswith("_abs")
    base = layer[: -len("_abs")] if absolute else layer
    for name in (base, base.replace(":", "/")):
        if name in versions:
            chain = versions[name]
            return (chain[0] if absolute else chain[-1]), absolute
    import difflib

    close = difflib.get_close_matches(base.replace(":", "/"), list(versions), n=5, cutoff=0.5)
    hint = f"; close names: {', '.join(close)}" if close else ""
    raise KeyError(f"layer {layer!r}: no blob {base!r} in the network{hint}")
