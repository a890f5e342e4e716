"""The convolutional baselines of the paper: LaMa-Regular (pix2pixHD "global") and LaMa-Dilated.

Module positions follow the official ``pix2pixhd.py`` so that ``model.13.conv_block.1.weight`` and friends
line up with official checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn

from lama.models.ffc import output_layers, upsampling_layers

# How a multi-dilated convolution combines its dilations: each reads its own chunk of the channels, or all of them.
COMB_MODES = ("cat_in", "sum")


class MultidilatedConv(nn.Module):
    """Parallel 3×3 convolutions with dilations 1, 2, 4, ... whose outputs are summed.

    Only the configuration LaMa-Dilated uses is built: ``comb_mode`` ``cat_in`` (each convolution reads its
    own consecutive chunk of the input channels) or ``sum`` (each reads all of them).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        kernel_size: int = 3,
        dilation_num: int = 3,
        comb_mode: str = "sum",
        padding: int = 1,
        min_dilation: int = 1,
        padding_mode: str = "reflect",
    ) -> None:
        super().__init__()
        if comb_mode not in COMB_MODES:
            raise ValueError(
                f"generator.multidilation_kwargs.comb_mode: {comb_mode!r} is not supported; expected 'cat_in' or 'sum'"
            )
        self.cat_in = comb_mode == "cat_in"
        if self.cat_in and in_dim % dilation_num:
            raise ValueError(f"MultidilatedConv: {in_dim} input channels do not split into {dilation_num} chunks")
        chunk = in_dim // dilation_num if self.cat_in else in_dim
        self.convs = nn.ModuleList()
        for i in range(dilation_num):
            dilation = min_dilation * 2**i
            self.convs.append(
                nn.Conv2d(
                    chunk, out_dim, kernel_size, padding=padding * dilation, dilation=dilation,
                    padding_mode=padding_mode,
                )
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inputs = x.chunk(len(self.convs), dim=1) if self.cat_in else [x] * len(self.convs)
        out = self.convs[0](inputs[0])
        for conv, part in zip(self.convs[1:], inputs[1:], strict=True):
            out = out + conv(part)
        return out


class ResnetBlock(nn.Module):
    """pad, conv3×3, BN, ReLU, pad, conv3×3, BN, plus the identity."""

    def __init__(self, dim: int, padding_type: str = "reflect") -> None:
        super().__init__()
        if padding_type != "reflect":
            raise ValueError(f"generator.padding_type: {padding_type!r} is not supported; expected 'reflect'")
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3),
            nn.BatchNorm2d(dim),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3),
            nn.BatchNorm2d(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class MultidilatedResnetBlock(nn.Module):
    """ResnetBlock whose convolutions are multi-dilated (the padding lives inside the convolutions)."""

    def __init__(self, dim: int, padding_type: str = "reflect", **multidilation_kwargs: int | str) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            MultidilatedConv(dim, dim, 3, padding_mode=padding_type, **multidilation_kwargs),
            nn.BatchNorm2d(dim),
            nn.ReLU(inplace=True),
            MultidilatedConv(dim, dim, 3, padding_mode=padding_type, **multidilation_kwargs),
            nn.BatchNorm2d(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class GlobalGenerator(nn.Module):
    """pix2pixHD global generator (`kind: pix2pixhd_global`); `multidilation_kwargs` makes it LaMa-Dilated."""

    def __init__(
        self,
        input_nc: int = 4,
        output_nc: int = 3,
        ngf: int = 64,
        n_downsampling: int = 3,
        n_blocks: int = 9,
        padding_type: str = "reflect",
        add_out_act: bool | str = True,
        max_features: int = 1024,
        multidilation_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        relu = nn.ReLU(inplace=True)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, kernel_size=7),
            nn.BatchNorm2d(ngf),
            relu,
        ]
        for i in range(n_downsampling):
            cin = min(max_features, ngf * 2**i)
            cout = min(max_features, ngf * 2 ** (i + 1))
            layers += [nn.Conv2d(cin, cout, kernel_size=3, stride=2, padding=1), nn.BatchNorm2d(cout), relu]
        bottleneck = min(max_features, ngf * 2**n_downsampling)
        for _ in range(n_blocks):
            if multidilation_kwargs is None:
                layers.append(ResnetBlock(bottleneck, padding_type))
            else:
                layers.append(MultidilatedResnetBlock(bottleneck, padding_type, **multidilation_kwargs))
        layers += upsampling_layers(ngf, n_downsampling, max_features)
        layers += output_layers(ngf, output_nc, add_out_act)
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
