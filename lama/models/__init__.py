"""LaMa generators, the discriminator, and model dirs in the official layout."""

from lama.models.discriminator import NLayerDiscriminator
from lama.models.generators import PRESETS, build_generator, count_parameters, generator_config
from lama.models.inference import fold_all_batchnorms, prepare_for_inference
from lama.models.model_dir import InpaintingModel, ModelDirError, load_model, read_config, save_model_dir
from lama.safe_load import UnsafeCheckpointError, load_checkpoint_file

__all__ = [
    "PRESETS",
    "InpaintingModel",
    "ModelDirError",
    "NLayerDiscriminator",
    "UnsafeCheckpointError",
    "build_generator",
    "count_parameters",
    "fold_all_batchnorms",
    "generator_config",
    "load_checkpoint_file",
    "load_model",
    "prepare_for_inference",
    "read_config",
    "save_model_dir",
]
