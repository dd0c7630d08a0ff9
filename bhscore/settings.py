"""The settings file (``settings.json``): the single source of truth of an analysis.

Every DNN, subject, ROI and every analysis constant lives in the settings file. It is validated on load;
a bad file raises :class:`SettingsError` with one message per problem, naming the key, the value found and
what is allowed.

Examples
--------
>>> from bhscore.settings import load_settings
>>> s = load_settings()                      # the repository's settings.json
>>> s.dnns["AlexNet"].layers[0]
'conv1_abs'
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

#: Visual areas that the fMRI files define (``ROI_<name>`` metadata rows), in no particular order.
KNOWN_ROIS = ("V1", "V2", "V3", "V4", "HVC", "LVC", "VC", "LOC", "FFA", "PPA")

#: The repository root (the directory holding the default ``settings.json``).
REPO_ROOT = Path(__file__).resolve().parent.parent

#: Environment variable naming the settings file used when none is given.
SETTINGS_ENV = "BHSCORE_SETTINGS"


class SettingsError(ValueError):
    """A settings file that cannot be used; the message names every bad key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RidgeSettings(_Strict):
    """Parameters of the FastL2LiR estimator for one direction (decoding or encoding)."""

    alpha: float = Field(100.0, gt=0, description="L2 penalty, added to the whole diagonal (bias included).")
    n_feat: int = Field(500, ge=1, description="Inputs selected per output by |Pearson r|.")
    dtype: Literal["float32", "float64"] = Field(
        "float64", description="Floating point precision of the fit (the paper: float64 decoding, float32 encoding)."
    )


class ScoreSettings(_Strict):
    """Parameters of the BH score itself."""

    p_threshold: float = Field(0.05, gt=0, lt=1, description="Items with p >= this are dropped.")
    p_method: Literal["legacy", "corrected"] = Field(
        "legacy",
        description="'legacy' reproduces the published t = r*sqrt((n-2)*(1-r^2)); 'corrected' is the textbook test.",
    )
    n_test_images: int = Field(
        50, ge=3, description="Test images behind each accuracy, used only when the accuracy files do not record it."
    )
    layers_per_draw: int = Field(5, ge=3, description="Layers per random draw (first and last always included).")
    n_draws: int = Field(100, ge=1, description="Random layer draws averaged for the decoding score.")
    layer_selection: Literal["random", "exact"] = Field(
        "random", description="'random': n_draws seeded draws; 'exact': the mean over every possible subset."
    )
    seed: int = Field(0, ge=0, description="Seed of the layer draws and of the bootstrap.")
    encoding_voxel_subsample: int | None = Field(
        1000, ge=1, description="Voxels kept per (subject, ROI, layer) file, legacy seed-0 draw; null keeps all."
    )
    n_bootstrap: int = Field(1000, ge=0, description="Bootstrap resamples for the confidence intervals (0: none).")
    ci_level: float = Field(0.95, gt=0, lt=1, description="Confidence level of the bootstrap intervals.")


class AnalysisSettings(_Strict):
    decoding: RidgeSettings = RidgeSettings(dtype="float64")
    encoding: RidgeSettings = RidgeSettings(dtype="float32")
    score: ScoreSettings = ScoreSettings()


class DNNSettings(_Strict):
    """One DNN: where its features and accuracies live and its representative layers, in hierarchy order."""

    dir: str = Field(description="Sub-directory of the features and accuracy trees, e.g. 'caffe/AlexNet'.")
    layers: list[str] = Field(description="Representative layers in hierarchy order (input side first).")
    imagenet_top1: float | None = Field(None, ge=0, le=100, description="ImageNet top-1 accuracy, percent.")
    model: str | None = Field(
        None,
        description="Model spec for feature extraction: 'torchvision:<name>', 'timm:<name>' or 'module:function'.",
    )
    weights: str | None = Field(None, description="Weights: a torchvision weights enum name or a local file path.")
    modules: dict[str, str] | None = Field(
        None, description="Layer name -> module name (named_modules()) for extraction; defaults to the layer name."
    )
    preprocessing: Literal["paper", "caffe", "model"] = Field("paper", description="Image preprocessing preset.")
    call: Literal["first", "last", "all"] = Field(
        "last", description="For modules called more than once per forward pass: which call's output to keep."
    )

    @field_validator("dir")
    @classmethod
    def _relative_dir(cls, v: str) -> str:
        if not v or v.startswith("/") or ".." in Path(v).parts:
            raise ValueError(f"must be a relative path inside the data tree without '..', got {v!r}")
        return v

    @field_validator("layers")
    @classmethod
    def _unique_layers(cls, v: list[str]) -> list[str]:
        dup = sorted({x for x in v if v.count(x) > 1})
        if dup:
            raise ValueError(f"layers must be unique; repeated: {dup}")
        if any(not x or "/" in x for x in v):
            raise ValueError("layer names must be non-empty and contain no '/' (the original trees use ':')")
        return v


class Settings(_Strict):
    """A whole analysis: data root, subjects, ROIs in hierarchy order, DNNs and analysis constants."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_ref: str | None = Field(None, alias="$schema", description="Path of the JSON schema, for editors.")
    data_root: str = Field("data", description="Data root, relative to this file; BHSCORE_DATA overrides it.")
    subjects: list[str] = Field(min_length=1)
    rois: list[str] = Field(min_length=2, description="ROIs in hierarchy order (lowest first).")
    analysis: AnalysisSettings = AnalysisSettings()
    dnns: dict[str, DNNSettings] = Field(min_length=1)

    #: Where the file was loaded from (not part of the file).
    _source: Path | None = None

    @field_validator("rois")
    @classmethod
    def _known_rois(cls, v: list[str]) -> list[str]:
        bad = [r for r in v if r not in KNOWN_ROIS]
        if bad:
            raise ValueError(f"unknown ROI(s) {bad}; allowed: {list(KNOWN_ROIS)}")
        if len(set(v)) != len(v):
            raise ValueError(f"ROIs must be unique, got {v}")
        return v

    @field_validator("subjects")
    @classmethod
    def _unique_subjects(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"subjects must be unique, got {v}")
        return v

    @model_validator(mode="after")
    def _enough_layers(self) -> Settings:
        need = self.analysis.score.layers_per_draw
        short = {name: len(d.layers) for name, d in self.dnns.items() if len(d.layers) < need}
        if short:
            raise ValueError(
                f"every DNN needs at least layers_per_draw = {need} layers; too few: "
                + ", ".join(f"{n} ({k})" for n, k in short.items())
            )
        return self

    # -- convenience -------------------------------------------------------------------------------
    @property
    def source(self) -> Path | None:
        """The file these settings were read from, or None."""
        return self._source

    @property
    def base_dir(self) -> Path:
        """Directory that relative paths in the file are resolved against."""
        return self._source.parent if self._source is not None else Path.cwd()

    def dnn(self, name: str) -> DNNSettings:
        """The settings of DNN ``name``; an unknown name raises :class:`SettingsError` listing the valid ones."""
        try:
            return self.dnns[name]
        except KeyError:
            raise SettingsError(_unknown_choice("DNN", name, list(self.dnns))) from None

    def check_choice(self, kind: str, value: str) -> str:
        """Check that ``value`` is one of this file's subjects or ROIs (``kind`` in {'subject', 'roi'})."""
        choices = {"subject": self.subjects, "roi": self.rois}[kind]
        if value not in choices:
            raise SettingsError(_unknown_choice(kind, value, choices))
        return value


def _unknown_choice(kind: str, value: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(value, choices, n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    return f"unknown {kind} {value!r}.{hint} Valid choices: {', '.join(choices)}"


def default_settings_path() -> Path:
    """The settings file used when none is given: ``$BHSCORE_SETTINGS`` or the repository's settings.json."""
    return Path(os.environ.get(SETTINGS_ENV, REPO_ROOT / "settings.json"))


def _format_errors(err: ValidationError, path: Path | str, raw: dict[str, Any]) -> str:
    lines = [f"{path}: {err.error_count()} problem(s) in the settings file:"]
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            # name the valid keys at that level and the closest one
            parent_model = _model_at(Settings, e["loc"][:-1])
            valid = sorted(f.alias or n for n, f in parent_model.model_fields.items()) if parent_model else []
            close = difflib.get_close_matches(str(e["loc"][-1]), valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            lines.append(f"  - {loc}: unknown key{hint}; valid keys here: {', '.join(valid)}")
            continue
        value = e.get("input")
        shown = json.dumps(value)[:120] if not isinstance(value, dict) else "{...}"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "literal_error":
            msg = f"must be one of {e['ctx']['expected']}"
        lines.append(f"  - {loc} = {shown}: {msg}")
    return "\n".join(lines)


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model class reached by following ``loc`` from ``model`` (dict keys are skipped)."""
    current: Any = model
    parts = list(loc)
    while parts:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        fields = {(f.alias or n): f for n, f in current.model_fields.items()}
        field = fields.get(parts.pop(0))
        if field is None:
            return None
        current = field.annotation
        if getattr(current, "__origin__", None) is dict:
            if not parts:
                return None
            parts.pop(0)  # the user's key, e.g. a DNN name
            current = current.__args__[1]
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def load_settings(path: str | os.PathLike | None = None) -> Settings:
    """Read and validate a settings file.

    Parameters
    ----------
    path : path-like, optional
        The JSON file; default :func:`default_settings_path`.

    Returns
    -------
    Settings

    Raises
    ------
    SettingsError
        The file is missing, not JSON, or fails validation (every problem is listed).
    """
    path = Path(path) if path is not None else default_settings_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SettingsError(f"settings file not found: {path}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise SettingsError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}): {e.msg}") from None
    return settings_from_dict(raw, source=path)


def settings_from_dict(raw: dict[str, Any], source: str | os.PathLike | None = None) -> Settings:
    """Validate a settings mapping (as read from JSON); ``source`` anchors relative paths."""
    try:
        s = Settings.model_validate(raw)
    except ValidationError as e:
        raise SettingsError(_format_errors(e, source or "<settings>", raw)) from None
    object.__setattr__(s, "_source", Path(source).resolve() if source is not None else None)
    return s


def save_settings(settings: Settings | dict[str, Any], path: str | os.PathLike) -> Path:
    """Write settings as JSON (atomically); a mapping is validated first."""
    from bhscore.formats import atomic_write_text

    if isinstance(settings, dict):
        settings = settings_from_dict(settings, source=path)
    data = settings.model_dump(by_alias=True, exclude_none=True, exclude_defaults=False)
    return atomic_write_text(Path(path), json.dumps(data, indent=2) + "\n")


def json_schema() -> dict[str, Any]:
    """The JSON schema of the settings file (``settings.schema.json``)."""
    schema = Settings.model_json_schema(by_alias=True)
    schema["title"] = "bhscore settings"
    return schema
