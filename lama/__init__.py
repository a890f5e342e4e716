"""LaMa Lab: LaMa large-mask inpainting as an installable, tested package."""

__version__ = "0.1.0"
