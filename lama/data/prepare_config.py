"""What ``lama prepare`` builds: the sources it reads and the checked settings of a build.

This module loads neither PIL nor webdataset nor numpy, so that the command line shows the sources and defaults
(``lama prepare --help``) at once; ``lama.data.prepare`` does the work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lama.config import ConfigError
from lama.imageio.formats import IMAGE_FORMATS
from lama.imageio.listing import IMAGE_EXTENSIONS

SOURCES = ("embedded", "places365", "folder")


@dataclass
class PrepareConfig:
    """What to build; ``None`` counts and size take the source's defaults."""

    source: str = "embedded"
    root: str | None = None  # the Places365 folder or the image folder
    seed: int = 0
    train_count: int | None = None  # None: every image (embedded: 240 crops)
    val_count: int | None = None  # embedded 8, places365 2000, folder: val/ or none
    test_count: int | None = None  # embedded 16, places365 30000, folder: test/ or none
    size: int | None = None  # short side of train images; embedded 256, otherwise 512 (Places365 "large")
    min_size: int = 256  # files whose short side is smaller are skipped
    image_format: str = "jpg"  # jpg | png | webp
    quality: int = 95  # jpg / webp quality
    shard_size: int = 1000  # samples per shard
    eval_sizes: list[int] = field(default_factory=lambda: [512, 256])
    extensions: list[str] = field(default_factory=lambda: list(IMAGE_EXTENSIONS))

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError(f"prepare.source={self.source!r}: expected one of {', '.join(SOURCES)}")
        if self.source != "embedded" and not self.root:
            raise ConfigError(f"prepare.root: the {self.source} source needs the folder that holds its images")
        if self.image_format not in IMAGE_FORMATS:
            raise ConfigError(f"prepare.image_format={self.image_format!r}: expected one of {', '.join(IMAGE_FORMATS)}")
        positive = {"shard_size": self.shard_size, "min_size": self.min_size, "size": self.size or 1}
        for key, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"prepare.{key}={value!r}: expected a positive integer")
        if not 1 <= self.quality <= 100:
            raise ConfigError(f"prepare.quality={self.quality!r}: expected 1..100")
        for key in ("train_count", "val_count", "test_count"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ConfigError(f"prepare.{key}={value!r}: expected a non-negative integer or null (all)")
        if not self.eval_sizes or any(not isinstance(size, int) or size < 8 for size in self.eval_sizes):
            raise ConfigError(f"prepare.eval_sizes={self.eval_sizes!r}: expected a list of sizes >= 8")

    @property
    def train_size(self) -> int:
        return self.size or (256 if self.source == "embedded" else 512)
