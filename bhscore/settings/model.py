"""The settings model: every DNN, subject, ROI and analysis constant, validated (pydantic)."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

#: Visual areas that the fMRI files define (``ROI_<name>`` metadata rows), in no particular order.
KNOWN_ROIS = ("V1", "V2", "V3", "V4", "HVC", "LVC", "VC", "LOC", "FFA", "PPA")

#: The repository root (the directory holding the default ``settings.json``).
REPO_ROOT = Path(__file__).resolve().parents[2]

#: Environment variable naming the settings file used when none is given.
SETTINGS_ENV = "BHSCORE_SETTINGS"


class SettingsError(ValueError):
    """A settings file that cannot be used; the message names every bad key."""


# Integer fields are StrictInt (JSON true or "40" are refused, not read as 1 or 40); float fields are
# StrictFloat (a JSON integer such as 100 is fine, a string or true is not) and finite.

#: Upper bounds of the score's repetition counts (each costs memory and time; see _bootstrap_bytes).
MAX_N_DRAWS = 100_000
MAX_N_BOOTSTRAP = 100_000
#: Largest decoding-bootstrap working set accepted (estimate of :func:`_bootstrap_bytes`).
MAX_BOOTSTRAP_BYTES = 16e9
#: Peak bytes per (bootstrap resample x layer draw x layer of a draw x ROI) of the decoding bootstrap
#: (bhscore.score.decoding_score_from_counts, measured with tracemalloc: 72 B per resample and draw with 5
#: layers per draw and 5 ROIs).
_BOOTSTRAP_BYTES_PER_CELL = 2.9


def _bootstrap_bytes(n_bootstrap: int, n_draws: int, layers_per_draw: int = 5, n_rois: int = 5) -> float:
    """Estimated peak memory (bytes) of the decoding score's bootstrap of one DNN."""
    return _BOOTSTRAP_BYTES_PER_CELL * n_bootstrap * n_draws * layers_per_draw * n_rois


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.3g} GB"


def _check_path_components(kind: str, names: list[str], hint: str = "") -> None:
    """Refuse names that are not one safe path component each (they name directories of the data trees)."""
    bad = [x for x in names if not x or x in (".", "..") or any(c in x for c in "/\\\0")]
    if bad:
        raise ValueError(
            f"{kind} names must be single path components (non-empty, not '.' or '..', without '/', '\\' or "
            f"NUL){hint}; bad: {', '.join(map(repr, bad))}"
        )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: Where the score reads a DNN's accuracies from: the downloaded published tree or this machine's results.
ACCURACY_SOURCES = ("published", "computed")
AccuracySource = Literal["published", "computed"]


#: ``analysis.<kind>.dtype`` -> (the selection's and stored weights' dtype, the Gram's and solves' dtype).
#: 'float32_mixed' is fastl2lir <= 0.7 called with dtype float32 (docs/method.md, options).
PRECISIONS = {"float32": ("float32", "float32"), "float64": ("float64", "float64"), "float32_mixed": ("float32", "float64")}


class RidgeSettings(_Strict):
    """Parameters of one direction (decoding or encoding): the FastL2LiR estimator and its inputs.

    Every field determines the numbers, so every field is part of the parameter set that a computed
    accuracy file records (:mod:`bhscore.provenance`).
    """

    alpha: StrictFloat = Field(
        100.0, gt=0, allow_inf_nan=False, description="L2 penalty, added to the whole diagonal (bias included)."
    )
    n_feat: StrictInt = Field(500, ge=1, description="Inputs selected per output by |Pearson r|.")
    exact_rows: bool = Field(False, strict=True, description="Fit on the row-expanded samples (an image's row repeated per presentation) instead of the per-image sums; same selections, weights equal within rounding. For checking.")
    dtype: Literal["float32", "float64", "float32_mixed"] = Field(
        "float64",
        description="Floating point precision of the fit. 'float32_mixed': the selection in float32, the Gram and "
        "the solves in float64 from the float32-rounded values, weights stored in float32 -- what fastl2lir <= 0.7 "
        "computed when called with dtype float32, as the original encoding script does (docs/method.md).",
    )
    solver: Literal["batched", "fastl2lir"] = Field(
        "batched",
        description="'batched': bhscore's FastL2LiR (CPU/CUDA, equal to fastl2lir within float rounding); "
        "'fastl2lir': the reference package.",
    )
    non_finite: Literal["error", "propagate"] = Field(
        "error",
        description="NaN/Inf in the test inputs or outputs: 'error' stops naming the file, sample and column; "
        "'propagate' keeps the original scripts' behaviour (NaN accuracies), warns and records it.",
    )
    # The original scripts' numerics (defaults) and the sane alternatives; docs/method.md, "Reproducing the
    # published accuracies: options".
    constant_inputs: Literal["original", "zero"] = Field(
        "original",
        description="An input constant over the training samples: 'original' z-scores it to 0/0 = NaN as the "
        "original scripts do, which every output then selects (the whole fit's accuracies NaN); 'zero' sets it "
        "to 0 (never selected).",
    )
    zscore_over: Literal["images", "samples"] = Field(
        "images",
        description="Statistics of the features (encoding inputs, decoding outputs): 'images' over the distinct "
        "training images, as the original scripts; 'samples' over the training samples (each image counted per "
        "presentation).",
    )
    float32_rounding: bool = Field(
        True, strict=True,
        description="Round as bdpy's ModelTraining/ModelTest with dtype float32: the z-scored training inputs and "
        "outputs, the statistics, the weights and the z-scored test inputs are float32 (the fit in dtype).",
    )


class ScoreSettings(_Strict):
    """Parameters of the BH score itself."""

    p_threshold: StrictFloat = Field(0.05, gt=0, lt=1, description="Items with p >= this are dropped.")
    p_method: Literal["legacy", "corrected"] = Field(
        "legacy",
        description="'legacy' reproduces the published t = r*sqrt((n-2)*(1-r^2)); 'corrected' is the textbook test.",
    )
    n_test_images: StrictInt = Field(
        50, ge=3, description="Test images behind each accuracy, used only when the accuracy files do not record it."
    )
    layers_per_draw: StrictInt = Field(5, ge=3, description="Layers per random draw (first and last always included).")
    n_draws: StrictInt = Field(100, ge=1, description="Random layer draws averaged for the decoding score.")
    layer_selection: Literal["random", "exact"] = Field(
        "random", description="'random': n_draws seeded draws; 'exact': the mean over every possible subset."
    )
    seed: StrictInt = Field(0, ge=0, description="Seed of the layer draws and of the bootstrap.")
    encoding_voxel_subsample: StrictInt | None = Field(
        1000, ge=1, description="Voxels kept per (subject, ROI, layer) file, legacy seed-0 draw; null keeps all."
    )
    n_bootstrap: StrictInt = Field(1000, ge=0, description="Bootstrap resamples for the confidence intervals (0: none).")
    ci_level: StrictFloat = Field(0.95, gt=0, lt=1, description="Confidence level of the bootstrap intervals.")
    accuracy_source: AccuracySource = Field(
        "published",
        description="Accuracies the score reads: 'published' (downloaded, <data root>/published) or 'computed' "
        "(this machine's decode/encode results for the current parameters, <data root>/computed). A DNN's own "
        "accuracy_source overrides it.",
    )

    @field_validator("n_draws")
    @classmethod
    def _bounded_draws(cls, v: int, info: ValidationInfo) -> int:
        if v > MAX_N_DRAWS:
            need = _bootstrap_bytes(cls.model_fields["n_bootstrap"].default, v,
                                    info.data.get("layers_per_draw", 5))  # fmt: skip
            raise ValueError(
                f"must be <= {MAX_N_DRAWS}; {v} draws would take about {_gb(need)} of memory in the bootstrap "
                f"(with the default 1000 resamples and 5 ROIs)"
            )
        return v

    @field_validator("n_bootstrap")
    @classmethod
    def _bounded_bootstrap(cls, v: int, info: ValidationInfo) -> int:
        if v > MAX_N_BOOTSTRAP:
            draws = info.data.get("n_draws", 100)
            need = _bootstrap_bytes(v, draws, info.data.get("layers_per_draw", 5))
            raise ValueError(
                f"must be <= {MAX_N_BOOTSTRAP}; {v} resamples would take about {_gb(need)} of memory "
                f"(with n_draws = {draws} and 5 ROIs)"
            )
        return v


#: Encoding inputs: every unit of a layer (``features_all/``, the paper) or the released 1000-unit subset.
EncodingInputs = Literal["all_units", "subset"]


class EncodingSettings(RidgeSettings):
    """:class:`RidgeSettings` of the encoding direction, plus which features tree the inputs come from."""

    unit_order: Literal["fortran", "c"] = Field(
        "fortran",
        description="Order of a layer's units as encoding inputs: 'fortran' as the original scripts "
        "(x.reshape(n, -1, order='F')), 'c' the feature files' C order. Only exact ties at the n_feat-th unit "
        "(and the rows of a saved model's W) differ.",
    )
    inputs: EncodingInputs = Field(
        "all_units",
        description="'all_units': every unit of the layer from <data root>/features_all (the paper's analysis; "
        "`bhscore download features-all --dnn NAME`); 'subset': the 1000-unit features/ tree (cheaper, not the "
        "paper's analysis).",
    )


class VerifySettings(_Strict):
    """Tolerances of ``bhscore verify --accuracies`` (computed vs published accuracy files)."""

    decoding_max_abs_diff: StrictFloat = Field(
        1e-6, ge=0, allow_inf_nan=False,
        description="Largest accepted |computed - published| decoding accuracy (float32 storage: ~1e-6).",
    )
    encoding_max_abs_diff: StrictFloat = Field(
        1e-6, ge=0, allow_inf_nan=False,
        description="Largest accepted |computed - published| encoding accuracy (not yet measured on the real "
        "data; see docs/method.md).",
    )
    min_pearson_r: StrictFloat = Field(
        0.9999, ge=-1, le=1, allow_inf_nan=False,
        description="Smallest accepted Pearson r between a computed and the published accuracy vector.",
    )


class AnalysisSettings(_Strict):
    decoding: RidgeSettings = RidgeSettings(dtype="float64")
    encoding: EncodingSettings = EncodingSettings(dtype="float32_mixed")
    verify: VerifySettings = VerifySettings()
    score: ScoreSettings = ScoreSettings()


class DNNSettings(_Strict):
    """One DNN: where its features and accuracies live and its representative layers, in hierarchy order."""

    dir: str = Field(description="Sub-directory of the features and accuracy trees, e.g. 'caffe/AlexNet'.")
    layers: list[str] = Field(description="Representative layers in hierarchy order (input side first).")
    imagenet_top1: StrictFloat | None = Field(None, ge=0, le=100, allow_inf_nan=False, description="ImageNet top-1 accuracy, percent.")
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
    accuracy_source: AccuracySource | None = Field(
        None,
        description="Overrides analysis.score.accuracy_source for this DNN (e.g. 'computed' for a DNN of your "
        "own, which has no published accuracies).",
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
        _check_path_components("layer", v, " (the original trees write a framework's '/' as ':')")
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
        _check_path_components("subject", v)
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

    @model_validator(mode="after")
    def _bootstrap_fits_in_memory(self) -> Settings:
        sc = self.analysis.score
        need = _bootstrap_bytes(sc.n_bootstrap, sc.n_draws, sc.layers_per_draw, len(self.rois))
        if need > MAX_BOOTSTRAP_BYTES:
            raise ValueError(
                f"analysis.score.n_bootstrap = {sc.n_bootstrap} with n_draws = {sc.n_draws}, layers_per_draw = "
                f"{sc.layers_per_draw} and {len(self.rois)} ROIs would take about {_gb(need)} of memory in the "
                f"decoding bootstrap (limit {_gb(MAX_BOOTSTRAP_BYTES)}); lower n_bootstrap or n_draws"
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

    def accuracy_source(self, name: str) -> str:
        """Where the score reads DNN ``name``'s accuracies: its own override, else ``analysis.score``'s."""
        return self.dnn(name).accuracy_source or self.analysis.score.accuracy_source

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
