"""The Fourier unit written as products with the DFT basis, for runtimes that have no DFT operator.

``torch.onnx`` turns ``torch.fft.rfftn``/``irfftn`` into ONNX's ``DFT`` operator, which ONNX Runtime runs exactly;
TensorRT, DirectML, OpenVINO and Core ML do not run it (or not for every size). This unit computes the same
orthonormal 2-D real FFT with four matrix products whose bases are built in the graph from the input's height and
width, so the exported file keeps dynamic sizes and every runtime with ``MatMul``, ``Cos`` and ``Sin`` runs it. It
is exact, not an approximation: the only difference from an FFT is the order of the float32 sums.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lama.models.ffc import FourierUnit


def dft_angles(rows: int, columns: int, size: int, like: torch.Tensor) -> torch.Tensor:
    """``2π·(j·k mod size)/size`` for j < rows, k < columns, in float32 on ``like``'s device. The product is reduced
    modulo ``size`` in integers first, so every angle is below 2π and keeps float32's full precision."""
    j = torch.arange(rows, device=like.device)
    k = torch.arange(columns, device=like.device)
    # The divisor is a tensor: ONNX export cannot take the remainder by a symbolic size (a Python int in eager).
    turns = torch.remainder(j[:, None] * k[None, :], torch.full((), size, device=like.device))
    return turns.to(torch.float32) * (2 * math.pi / size)


class BasisFourierUnit(nn.Module):
    """``FourierUnit.forward`` (``fft_norm="ortho"``) with the FFTs as matrix products; it shares the unit's
    convolution and norm, so loading, folding and casting the generator act on it unchanged."""

    def __init__(self, unit: FourierUnit) -> None:
        super().__init__()
        if unit.fft_norm != "ortho":
            raise ValueError(f"fft_norm={unit.fft_norm!r}: the basis Fourier unit computes only 'ortho'")
        self.conv_layer = unit.conv_layer
        self.bn = unit.bn
        self.relu = unit.relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        half = width // 2 + 1
        # The transform runs in float32 whatever the convolutions run in, as FourierUnit's FFT does.
        signal = x.to(torch.float32)
        scale = torch.rsqrt(torch.full((), height * width, dtype=torch.float32, device=x.device))
        along_w = dft_angles(width, half, width, x)  # [W, W//2+1]
        along_h = dft_angles(height, height, height, x)  # [H, H], symmetric
        cos_w, sin_w = torch.cos(along_w), torch.sin(along_w)
        cos_h, sin_h = torch.cos(along_h), torch.sin(along_h)
        # Forward: e^{-iθ} along the width (real input), then along the height (complex).
        real = signal @ cos_w
        imag = -(signal @ sin_w)
        real, imag = (cos_h @ real + sin_h @ imag) * scale, (cos_h @ imag - sin_h @ real) * scale
        # Interleave per channel (2c is Re, 2c+1 is Im), the official weight layout.
        stacked = torch.stack([real, imag], dim=2).reshape(batch, -1, height, half)
        stacked = self.relu(self.bn(self.conv_layer(stacked.to(self.conv_layer.weight.dtype))))
        pairs = stacked.to(torch.float32).reshape(batch, -1, 2, height, half)
        real, imag = pairs[:, :, 0], pairs[:, :, 1]
        # Inverse: e^{+iθ} along the height, then the real inverse along the width, where each bin but the DC and
        # (for an even width) the Nyquist one stands for itself and its conjugate, and their imaginary parts drop out
        # (as in pocketfft's and cuFFT's c2r).
        real, imag = cos_h @ real - sin_h @ imag, cos_h @ imag + sin_h @ real
        bins = torch.arange(half, device=x.device)
        weight = torch.where((bins == 0) | (bins * 2 == width), 1.0, 2.0).to(torch.float32)[:, None]
        out = (real @ (cos_w.transpose(0, 1) * weight) - imag @ (sin_w.transpose(0, 1) * weight)) * scale
        return out.to(x.dtype)


def with_basis_fourier_units(generator: nn.Module) -> nn.Module:
    """``generator`` with every ``FourierUnit`` replaced in place by a :class:`BasisFourierUnit` sharing its
    weights; returns it."""
    for parent in list(generator.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, FourierUnit):
                setattr(parent, name, BasisFourierUnit(child))
    return generator
