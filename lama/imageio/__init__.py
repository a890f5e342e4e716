"""Images in and out: decoding and checking untrusted image files, and the official eval layout (masks paired with
their images, read as float arrays) that predict, validation, evaluation and the report share."""
