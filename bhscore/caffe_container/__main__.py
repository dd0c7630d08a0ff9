"""``python3 -m bhscore.caffe_container``: see :func:`bhscore.caffe_container.extract.main`."""

import sys

from bhscore.caffe_container.extract import main

sys.exit(main())
