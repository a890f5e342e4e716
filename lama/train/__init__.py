"""Training: the LaMa GAN loop on Accelerate, resumable, validated and tracked in MLflow.

Each name below is imported from its submodule when first used, so that composing a config (``lama.train.config``,
``lama train --print-config``) does not load Accelerate and MLflow.
"""

from __future__ import annotations

from lama.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "lama.train.config": ("RunConfig", "load_config"),
    "lama.train.loop": ("NonFiniteLossError", "TrainResult", "train"),
})
