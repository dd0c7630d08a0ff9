"""Reading, writing and describing settings files: load with clear errors, the one validated writer, the schema."""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from bhscore.settings.model import REPO_ROOT, SETTINGS_ENV, Settings, SettingsError


def default_settings_path() -> Path:
    """The settings file used when none is given: ``$BHSCORE_SETTINGS`` or the repository's settings.json."""
    return Path(os.environ.get(SETTINGS_ENV, REPO_ROOT / "settings.json"))


#: Clearer wording of pydantic's type errors (JSON terms).
_TYPE_MESSAGES = {
    "int_type": "must be a JSON integer such as 40 (not a string, true/false or a fraction)",
    "float_type": "must be a JSON number such as 100 or 0.5 (not a string or true/false)",
    "finite_number": "must be a finite number (not NaN or Infinity)",
}


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
        msg = _TYPE_MESSAGES.get(e["type"], msg)
        lines.append(f"  - {loc} = {shown}: {msg}" if e["loc"] else f"  - {msg}")
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


def load_settings(path: str | os.PathLike | None = None, data_root: str | os.PathLike | None = None) -> Settings:
    """Read and validate a settings file.

    Parameters
    ----------
    path : path-like, optional
        The JSON file; default :func:`default_settings_path`.
    data_root : path-like, optional
        Replaces the file's ``data_root``, resolved once here (relative to the current directory) to an
        absolute path. ``$BHSCORE_DATA`` still overrides it, as it overrides the file's
        (:func:`bhscore.paths.data_root`).

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
    if data_root is not None and isinstance(raw, dict):
        raw = {**raw, "data_root": str(Path(data_root).expanduser().resolve())}
    return settings_from_dict(raw, source=path)


def settings_from_dict(raw: dict[str, Any], source: str | os.PathLike | None = None) -> Settings:
    """Validate a settings mapping (as read from JSON); ``source`` anchors relative paths."""
    try:
        s = Settings.model_validate(raw)
    except ValidationError as e:
        raise SettingsError(_format_errors(e, source or "<settings>", raw)) from None
    object.__setattr__(s, "_source", Path(source).resolve() if source is not None else None)
    return s


def write_settings(data: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a settings mapping as JSON, atomically, after validating exactly the text written.

    The text is ``json.dumps(data, indent=2)`` and a newline: keys in the mapping's order, formatted as the
    repository's settings files. It is parsed back and validated as :func:`load_settings` validates a file
    (relative paths anchored at ``path``) before anything is written, so a bad mapping leaves ``path`` as it
    was.

    Parameters
    ----------
    data : dict
        The settings mapping, as it would be read from JSON.
    path : path-like
        The file to write (its directory is created when missing).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    SettingsError
        The mapping fails validation (every problem is listed); nothing is written.
    """
    from bhscore.atomic import atomic_write_text

    text = json.dumps(data, indent=2) + "\n"
    settings_from_dict(json.loads(text), source=path)
    return atomic_write_text(path, text)


def json_schema() -> dict[str, Any]:
    """The JSON schema of the settings file (``settings.schema.json``)."""
    schema = Settings.model_json_schema(by_alias=True)
    schema["title"] = "bhscore settings"
    return schema
