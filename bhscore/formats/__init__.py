"""Readers and writers of the real file formats (see ``docs``: data_formats.md).

- fMRI: bdpy BData HDF5 files (``*_VC_v2.h5``): :mod:`bhscore.formats.fmri`.
- DNN features: a tree ``<root>/<layer>/<image>.mat`` (key ``feat``), MAT v7.3 (HDF5, written by
  hdf5storage/bdpy) or MAT v5 (scipy); an optional feature-index file beside the layers; a per-layer array
  cache so a layer of 1250 files is read once: :mod:`bhscore.formats.features`.
- Accuracy trees: ``accuracy.mat`` (key ``accuracy``, float32, shape (1, n)): :mod:`bhscore.formats.accuracy`.
- Trained models: bdpy's "bdmodel" directory (``W.mat`` sparse, ``b.mat``, normalisation vectors):
  :mod:`bhscore.formats.bdmodel`.
- MAT files of both flavours, and the fast MAT v7.3 writer they share: :mod:`bhscore.formats.mat`.

Every writer is atomic (:mod:`bhscore.atomic`, whose functions are re-exported here): it writes a hidden
temporary file in the destination directory and renames it, so an interrupted job never leaves a file that
looks complete. Temporary names start with ``.`` and therefore are never listed by the readers (nor by bdpy's
``Features``, which globs ``*.mat``). Code that only needs atomic writes imports :mod:`bhscore.atomic`, which
does not pull in h5py.
"""

from bhscore.atomic import atomic_path, atomic_save_npy, atomic_write_text
from bhscore.formats.accuracy import (
    ACCURACY_KEY,
    AccuracyFile,
    read_accuracy,
    read_accuracy_file,
    write_accuracy,
)
from bhscore.formats.bdmodel import load_bdmodel, save_bdmodel
from bhscore.formats.features import (
    FEATURE_KEY,
    feature_labels,
    feature_layers,
    feature_shape,
    fortran_unit_order,
    load_feature,
    read_feature_index,
    read_layer,
    save_feature,
    write_feature_index,
)
from bhscore.formats.fmri import FMRIData, average_by_label, read_fmri, stimulus_code, write_fmri
from bhscore.formats.mat import load_mat_array, load_mat_arrays, mat73_header

__all__ = [
    "ACCURACY_KEY",
    "FEATURE_KEY",
    "AccuracyFile",
    "FMRIData",
    "atomic_path",
    "atomic_save_npy",
    "atomic_write_text",
    "average_by_label",
    "feature_labels",
    "feature_layers",
    "feature_shape",
    "fortran_unit_order",
    "load_bdmodel",
    "load_feature",
    "load_mat_array",
    "load_mat_arrays",
    "mat73_header",
    "read_accuracy",
    "read_accuracy_file",
    "read_feature_index",
    "read_fmri",
    "read_layer",
    "save_bdmodel",
    "save_feature",
    "stimulus_code",
    "write_accuracy",
    "write_feature_index",
    "write_fmri",
]
