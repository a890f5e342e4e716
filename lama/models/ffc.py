"""Fast Fourier convolutions and the FFC ResNet generator of LaMa.

The module tree mirrors the official implementation attribute for attribute (``model.<i>.ffc.convl2g``,
``convg2g.fu.conv_layer`` ...), because official checkpoints are plain state dicts keyed by those paths.
Branches that carry no channels are registered as nothing, so they produce no keys.
"""

from __future__ import annotations

import torch
from torch import nn

# An FFC activation travels as (local, global); a side without channels is the int 0, as in the official code.
Branch = torch.Tensor | int
FeatureTuple = tuple[Branch, Branch]


class FourierUnit(nn.Module):
    """1×1 convolution in the frequency domain: every output pixel sees the whole image."""

    def __init__(self, in_channels: int, out_channels: int, fft_norm: str = "ortho") -> None:
        super().__init__()
        self.conv_layer = nn.Conv2d(in_channels * 2, out_channels * 2, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels * 2)
        self.relu = nn.ReLU(inplace=True)
        self.fft_norm = fft_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        # The FFT runs in at least float32: cuFFT and pocketfft have no bf16 kernels for arbitrary sizes, and
        # half-precision spectra of large BatchNorm activations overflow.
        fft_dtype = torch.promote_types(x.dtype, torch.float32)
        spectrum = torch.fft.rfftn(x.to(fft_dtype), dim=(-2, -1), norm=self.fft_norm)
        # The width of the half spectrum, from the input's (ONNX export cannot read a complex tensor's shape).
        bins = width // 2 + 1
        # Interleave per input channel: channel 2c is Re(c), 2c+1 is Im(c) (the official weight layout).
        stacked = torch.view_as_real(spectrum).permute(0, 1, 4, 2, 3).reshape(batch, -1, height, bins)
        stacked = stacked.to(self.conv_layer.weight.dtype)
        stacked = self.relu(self.bn(self.conv_layer(stacked)))
        pairs = stacked.to(fft_dtype).reshape(batch, -1, 2, height, bins).permute(0, 1, 3, 4, 2)
        spectrum = torch.view_as_complex(pairs.contiguous())
        # s= restores odd widths exactly: rfft of width 11 has 6 bins, which alone would decode to width 10.
        out = torch.fft.irfftn(spectrum, s=(height, width), dim=(-2, -1), norm=self.fft_norm)
        return out.to(x.dtype)


class SpectralTransform(nn.Module):
    """The global-to-global branch: 1×1 bottleneck, Fourier unit (plus optional local Fourier unit), 1×1 up."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, enable_lfu: bool = True) -> None:
        super().__init__()
        self.enable_lfu = enable_lfu
        self.downsample = nn.AvgPool2d(kernel_size=2, stride=2) if stride == 2 else nn.Identity()
        hidden = out_channels // 2
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, hidden, kernel_size=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
        )
        self.fu = FourierUnit(hidden, hidden)
        if enable_lfu:
            self.lfu = FourierUnit(hidden, hidden)
        self.conv2 = nn.Conv2d(hidden, out_channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.downsample(x))
        out = x + self.fu(x)
        if self.enable_lfu:
            out = out + self._local_fourier(x)
        return self.conv2(out)

    def _local_fourier(self, x: torch.Tensor) -> torch.Tensor:
        # The first quarter of the channels is folded 2×2 in space, transformed, and tiled back. The official
        # code splits both axes at h // 2, so it only makes sense on square maps; we keep that behaviour. The
        # halves are sliced rather than split by a computed size, which ONNX export cannot fold.
        channels, height = x.shape[1], x.shape[2]
        half = height // 2
        quarter = x[:, : channels // 4]
        top, bottom = quarter[:, :, :half], quarter[:, :, half:]
        folded = torch.cat([top[..., :half], bottom[..., :half], top[..., half:], bottom[..., half:]], dim=1)
        return self.lfu(folded).repeat(1, 1, 2, 2)


class FFC(nn.Module):
    """Fast Fourier convolution: local and global channel groups exchange information in four branches."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        ratio_gin: float,
        ratio_gout: float,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        bias: bool = False,
        enable_lfu: bool = True,
        padding_type: str = "reflect",
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"FFC stride must be 1 or 2, got {stride}")
        in_cg = int(in_channels * ratio_gin)
        in_cl = in_channels - in_cg
        out_cg = int(out_channels * ratio_gout)
        out_cl = out_channels - out_cg
        self.ratio_gin = ratio_gin
        self.ratio_gout = ratio_gout

        def conv(cin: int, cout: int) -> nn.Conv2d | None:
            if cin == 0 or cout == 0:
                return None
            return nn.Conv2d(
                cin, cout, kernel_size, stride, padding, dilation, bias=bias, padding_mode=padding_type
            )

        self.convl2l = conv(in_cl, out_cl)
        self.convl2g = conv(in_cl, out_cg)
        self.convg2l = conv(in_cg, out_cl)
        self.convg2g = SpectralTransform(in_cg, out_cg, stride, enable_lfu) if in_cg and out_cg else None

    def forward(self, x: torch.Tensor | FeatureTuple) -> FeatureTuple:
        x_l, x_g = x if isinstance(x, tuple) else (x, 0)
        out_l: Branch = 0
        out_g: Branch = 0
        if self.ratio_gout != 1:
            out_l = _sum(_apply(self.convl2l, x_l), _apply(self.convg2l, x_g))
        if self.ratio_gout != 0:
            out_g = _sum(_apply(self.convl2g, x_l), _apply(self.convg2g, x_g))
        return out_l, out_g


def _apply(module: nn.Module | None, x: Branch) -> Branch:
    """An absent branch, or a branch fed by an absent side, contributes 0."""
    if module is None or not isinstance(x, torch.Tensor):
        return 0
    return module(x)


def _sum(a: Branch, b: Branch) -> Branch:
    # Adding the int 0 of an absent branch would copy a full-resolution tensor (the stem's is 64×H×W).
    if not isinstance(a, torch.Tensor):
        return b
    if not isinstance(b, torch.Tensor):
        return a
    return a + b


class FFC_BN_ACT(nn.Module):  # noqa: N801 - the official class name; kept so the code reads against the paper's
    """FFC followed by a norm and an activation on each of the two branches."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        ratio_gin: float = 0.0,
        ratio_gout: float = 0.0,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        bias: bool = False,
        activation: type[nn.Module] = nn.Identity,
        padding_type: str = "reflect",
        enable_lfu: bool = True,
    ) -> None:
        super().__init__()
        self.ffc = FFC(
            in_channels, out_channels, kernel_size, ratio_gin, ratio_gout, stride, padding, dilation, bias,
            enable_lfu, padding_type,
        )
        global_channels = int(out_channels * ratio_gout)
        local_channels = out_channels - global_channels
        self.bn_l = nn.BatchNorm2d(local_channels) if ratio_gout != 1 else nn.Identity()
        self.bn_g = nn.BatchNorm2d(global_channels) if ratio_gout != 0 else nn.Identity()
        self.act_l = activation(inplace=True) if ratio_gout != 1 else nn.Identity()
        self.act_g = activation(inplace=True) if ratio_gout != 0 else nn.Identity()

    def forward(self, x: torch.Tensor | FeatureTuple) -> FeatureTuple:
        x_l, x_g = self.ffc(x)
        if isinstance(x_l, torch.Tensor):
            x_l = self.act_l(self.bn_l(x_l))
        if isinstance(x_g, torch.Tensor):
            x_g = self.act_g(self.bn_g(x_g))
        return x_l, x_g


class FFCResnetBlock(nn.Module):
    """Two FFC layers with a residual connection on each branch (both layers end with BN + ReLU)."""

    def __init__(self, dim: int, padding_type: str = "reflect", dilation: int = 1, **conv_kwargs: float | bool):
        super().__init__()
        self.conv1 = FFC_BN_ACT(
            dim, dim, 3, padding=dilation, dilation=dilation, activation=nn.ReLU, padding_type=padding_type,
            **conv_kwargs,
        )
        self.conv2 = FFC_BN_ACT(
            dim, dim, 3, padding=dilation, dilation=dilation, activation=nn.ReLU, padding_type=padding_type,
            **conv_kwargs,
        )

    def forward(self, x: FeatureTuple) -> FeatureTuple:
        x_l, x_g = x
        out_l, out_g = self.conv2(self.conv1((x_l, x_g)))
        return x_l + out_l, x_g + out_g


class ConcatTupleLayer(nn.Module):
    """(local, global) → one tensor, local channels first."""

    def forward(self, x: FeatureTuple) -> torch.Tensor:
        x_l, x_g = x
        if not isinstance(x_g, torch.Tensor):
            return x_l
        if not isinstance(x_l, torch.Tensor):
            return x_g
        return torch.cat([x_l, x_g], dim=1)


# The official ``add_out_act`` names (True means tanh, False or None no activation).
OUT_ACTIVATIONS = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def output_layers(ngf: int, output_nc: int, add_out_act: bool | str) -> list[nn.Module]:
    """Reflect-padded 7×7 output conv plus the official ``add_out_act`` (True: tanh, a name, or False: none)."""
    layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0)]
    if add_out_act is False or add_out_act is None:
        return layers
    name = "tanh" if add_out_act is True else add_out_act
    if name not in OUT_ACTIVATIONS:
        raise ValueError(
            f"generator.add_out_act: unknown activation {name!r}; expected one of {sorted(OUT_ACTIVATIONS)}"
        )
    return [*layers, OUT_ACTIVATIONS[name]()]


def upsampling_layers(ngf: int, n_downsampling: int, max_features: int) -> list[nn.Module]:
    """Transposed-conv decoder shared by all LaMa generators; the ReLU is one shared module, as officially."""
    layers: list[nn.Module] = []
    relu = nn.ReLU(inplace=True)
    for i in range(n_downsampling):
        mult = 2 ** (n_downsampling - i)
        cin = min(max_features, ngf * mult)
        cout = min(max_features, ngf * mult // 2)
        layers += [
            nn.ConvTranspose2d(cin, cout, kernel_size=3, stride=2, padding=1, output_padding=1),
            nn.BatchNorm2d(cout),
            relu,
        ]
    return layers


class FFCResNetGenerator(nn.Module):
    """LaMa's generator: conv encoder, FFC residual bottleneck, transposed-conv decoder (`kind: ffc_resnet`)."""

    def __init__(
        self,
        input_nc: int = 4,
        output_nc: int = 3,
        ngf: int = 64,
        n_downsampling: int = 3,
        n_blocks: int = 9,
        padding_type: str = "reflect",
        init_conv_kwargs: dict | None = None,
        downsample_conv_kwargs: dict | None = None,
        resnet_conv_kwargs: dict | None = None,
        add_out_act: bool | str = True,
        max_features: int = 1024,
    ) -> None:
        super().__init__()
        init_conv_kwargs = dict(init_conv_kwargs or {})
        downsample_conv_kwargs = dict(downsample_conv_kwargs or {})
        resnet_conv_kwargs = dict(resnet_conv_kwargs or {})
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            FFC_BN_ACT(input_nc, ngf, 7, padding=0, activation=nn.ReLU, **init_conv_kwargs),
        ]
        for i in range(n_downsampling):
            kwargs = dict(downsample_conv_kwargs)
            if i == n_downsampling - 1:
                # The last encoder layer creates the local/global split that the bottleneck expects.
                kwargs["ratio_gout"] = resnet_conv_kwargs.get("ratio_gin", 0)
            cin = min(max_features, ngf * 2**i)
            cout = min(max_features, ngf * 2 ** (i + 1))
            layers.append(FFC_BN_ACT(cin, cout, 3, stride=2, padding=1, activation=nn.ReLU, **kwargs))
        bottleneck = min(max_features, ngf * 2**n_downsampling)
        layers += [FFCResnetBlock(bottleneck, padding_type, **resnet_conv_kwargs) for _ in range(n_blocks)]
        layers.append(ConcatTupleLayer())
        layers += upsampling_layers(ngf, n_downsampling, max_features)
        layers += output_layers(ngf, output_nc, add_out_act)
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
