"""A stimulus image as 8-bit RGB, shared by the host's extraction and the Caffe container.

Python >= 3.9 and Pillow only: the file is mounted into the Caffe image (``CAFFE_CODE_PATHS``).
"""


def open_rgb(path):
    """Read an image as an 8-bit RGB PIL image: greyscale and palette converted, transparency composited
    over white (as a browser shows it), so that host and container feed a DNN the same pixels.

    Raises
    ------
    FileNotFoundError, PIL.UnidentifiedImageError, OSError, ValueError, SyntaxError
        What Pillow raises for a missing or unreadable file (the callers turn them into their own errors).
    """
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        return im.convert("RGB")
