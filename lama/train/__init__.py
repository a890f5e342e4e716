"""Training: the LaMa GAN loop on Accelerate, resumable, validated and tracked in MLflow."""

from lama.train.config import RunConfig, load_config
from lama.train.loop import NonFiniteLossError, TrainResult, train

__all__ = ["NonFiniteLossError", "RunConfig", "TrainResult", "load_config", "train"]
