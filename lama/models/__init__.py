"""LaMa generators, the discriminator, and model dirs in the official layout.

Each name below is imported from its submodule when first used, so that importing a torch-free submodule (such as
``lama.models.inference_options``, which the command line reads for its help) does not load torch.
"""

from __future__ import annotations

from lama.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "lama.models.discriminator": ("NLayerDiscriminator",),
    "lama.models.generators": ("PRESETS", "build_generator", "count_parameters", "generator_config"),
    "lama.models.hd_strategy": ("HDStrategy",),
    "lama.models.inference": ("BatchRunner", "fold_all_batchnorms", "prepare_for_inference"),
    "lama.models.inference_options": ("InferenceOptions", "RefinerOptions"),
    "lama.models.model_dir": ("InpaintingModel", "ModelDirError", "load_model", "read_config", "save_model_dir"),
    "lama.models.refinement": ("Refiner",),
    "lama.safe_load": ("UnsafeCheckpointError", "load_checkpoint_file"),
})
