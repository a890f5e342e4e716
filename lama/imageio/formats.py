"""The encodings a dataset image can be stored in, by the names configs and commands use.

A module of its own, free of PIL and numpy, so that the command line lists them (``lama prepare --help``) without
loading either; ``lama.imageio.images`` encodes with them.
"""

from __future__ import annotations

# Each encoding's name, with the PIL format that writes it.
IMAGE_FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
