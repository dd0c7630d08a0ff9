"""The settings file (``settings.json``): the single source of truth of an analysis.

Every DNN, subject, ROI and every analysis constant lives in the settings file. It is validated on load;
a bad file raises :class:`SettingsError` with one message per problem, naming the key, the value found and
what is allowed. :mod:`bhscore.settings.model` holds the model, :mod:`bhscore.settings.io` reading,
the one validated writer and the JSON schema.

Examples
--------
>>> from bhscore.settings import load_settings
>>> s = load_settings()                      # the repository's settings.json
>>> s.dnns["AlexNet"].layers[0]
'conv1_abs'
"""

from __future__ import annotations

from bhscore.settings.io import (
    default_settings_path,
    json_schema,
    load_settings,
    settings_from_dict,
    write_settings,
)
from bhscore.settings.model import (
    ACCURACY_SOURCES,
    KNOWN_ROIS,
    PRECISIONS,
    REPO_ROOT,
    SETTINGS_ENV,
    AnalysisSettings,
    DNNSettings,
    EncodingSettings,
    RidgeSettings,
    ScoreSettings,
    Settings,
    SettingsError,
    VerifySettings,
)

__all__ = [
    "ACCURACY_SOURCES", "KNOWN_ROIS", "PRECISIONS", "REPO_ROOT", "SETTINGS_ENV",
    "AnalysisSettings", "DNNSettings", "EncodingSettings", "RidgeSettings", "ScoreSettings", "Settings",
    "SettingsError", "VerifySettings",
    "default_settings_path", "json_schema", "load_settings", "settings_from_dict", "write_settings",
]  # fmt: skip
