"""Caffe feature extraction inside the Docker image (``feature_extraction/caffe/Dockerfile``).

Contract
--------
- Python >= 3.9 (the image is Debian 11 "bullseye": Python 3.9, numpy 1.19, h5py 2.10, Pillow 8.1, pycaffe).
- Imports the standard library, numpy, h5py, Pillow, pycaffe (``caffe``, only when a network is built) and,
  of bhscore, only this package, :mod:`bhscore.caffe_prototxt`, :mod:`bhscore.unit_index` (the unit draw and
  index-file rules), :mod:`bhscore.rgb` (reading an image as RGB) and :mod:`bhscore.atomic` (atomic writes),
  all shared with the host: no torch, pydantic, scipy or hdf5storage. The container mounts exactly these paths
  (``bhscore.extraction.CAFFE_CODE_PATHS``) under /opt/bhscore, so ``bhscore`` is a namespace package there
  and ``bhscore/__init__.py`` never runs.
- Writes the features tree of ``bhscore extract``: ``<out>/<layer>/<image>.mat`` (key ``feat``, float32,
  shape (1, n_units), MAT v7.3 as bdpy/hdf5storage write it) and ``<out>/index_random<n>.mat`` (struct
  ``index``: layer -> 0-based unit indices), with the host's seeded unit draw; resumable, atomic writes.

``python3 -m bhscore.caffe_container --help`` lists the options; ``bhscore extract --backend caffe`` builds the
``docker run`` command (``bhscore.extraction.caffe_docker_command``). tests/test_caffe_container.py runs this
package under CPython 3.9 with a stub ``caffe`` module and reads its output with the host readers and bdpy.
"""
