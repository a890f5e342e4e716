"""The official LaMa training augmentations, batched with kornia so they run on the training device.

The official ``distortions`` transform (albumentations 0.5.2 + imgaug 0.4.0) runs per image on the CPU in this
order: perspective, affine, optical distortion, random crop, horizontal flip, CLAHE, brightness/contrast and
hue/saturation/value, each with probability 0.5. Here the CPU loader has already cut a random ``window`` (≥ crop)
from the image, the geometric ops see that whole window, and the final crop is the window's centre, so the crop
still sees real content where the geometric ops pulled it in from outside.

Each op is a :class:`RandomOp`: ``sample`` draws its parameters (from torch's global RNG unless a generator is
given) and ``apply`` runs it with given parameters, so tests and callers can pin them. Parameters are drawn on
the CPU and moved to the images' device, which keeps a seed's output the same on every device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import kornia.color
import kornia.enhance
import kornia.geometry.calibration
import kornia.geometry.transform
import torch
from torch import nn

Params = dict[str, torch.Tensor]
VARIANTS = ("distortions", "no_augs", "flip")


@dataclass(frozen=True)
class AugmentConfig:
    """Official LaMa transform settings; ranges are symmetric (±limit) unless given as a (low, high) pair.

    ``variant``: ``distortions`` (official Places config), ``no_augs`` (only the final centre crop; CelebA) or
    ``flip`` (centre crop + horizontal flip). ``p`` is the probability of every random op, 0.5 officially.
    Units follow the official code: degrees for ``rotate`` and ``shear`` (imgaug), pixels for ``shift_limit``
    (albumentations 0.5.2 rounds ``uniform(-0.05, 0.05)`` to whole pixels, so the official shift is always 0),
    OpenCV 8-bit HSV units for ``hue`` (0..179), ``saturation`` and ``value`` (0..255).
    """

    variant: str = "distortions"
    crop_size: int = 256
    perspective_scale: tuple[float, float] = (0.0, 0.06)
    affine_scale: tuple[float, float] = (0.7, 1.3)
    rotate: float = 40.0
    shear: float = 0.1
    distort_limit: float = 0.05
    shift_limit: float = 0.05
    clahe_clip: tuple[float, float] = (1.0, 4.0)
    clahe_grid: int = 8
    brightness: float = 0.2
    contrast: float = 0.2
    hue: float = 5.0
    saturation: float = 30.0
    value: float = 5.0
    p: float = 0.5

    def validate(self) -> None:
        """Fail early, naming the field, rather than deep inside a training step."""
        if self.variant not in VARIANTS:
            raise ValueError(f"AugmentConfig.variant={self.variant!r}: expected one of {', '.join(VARIANTS)}")
        _check(self, "clahe_grid", isinstance(self.clahe_grid, int) and self.clahe_grid > 0, "a positive int")
        smallest = self.min_crop_size
        _check(self, "crop_size", isinstance(self.crop_size, int) and self.crop_size >= smallest,
               "a positive int" if smallest == 1 else f"an int >= {smallest} (CLAHE cuts the crop into "
               f"{self.clahe_grid}x{self.clahe_grid} tiles)")
        _check_range(self, "perspective_scale", 0.0, 0.25)  # larger corner jitter can fold the corner quad
        _check_range(self, "affine_scale", 0.0, math.inf, open_low=True)
        _check_range(self, "clahe_clip", 0.0, math.inf, open_low=True)
        limits = {
            "rotate": 180.0,
            "shear": 45.0,
            "distort_limit": 1.0,
            "shift_limit": math.inf,
            "brightness": 1.0,
            "contrast": 1.0,
            "hue": 180.0,
            "saturation": 255.0,
            "value": 255.0,
            "p": 1.0,
        }
        for name, high in limits.items():
            value = getattr(self, name)
            _check(self, name, _is_number(value) and 0.0 <= value <= high, f"a number in [0, {high}]")

    @property
    def min_crop_size(self) -> int:
        """The smallest crop the variant can process: kornia's CLAHE (``distortions`` only) cuts the crop into
        ``clahe_grid``² tiles of an even size, which needs more pixels a side than the grid has tiles."""
        return self.clahe_grid + 1 if self.variant == "distortions" else 1


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check(config: AugmentConfig, name: str, ok: bool, allowed: str) -> None:
    if not ok:
        raise ValueError(f"AugmentConfig.{name}={getattr(config, name)!r}: expected {allowed}")


def _check_range(config: AugmentConfig, name: str, low: float, high: float, open_low: bool = False) -> None:
    pair = getattr(config, name)
    ok = (
        isinstance(pair, tuple)
        and len(pair) == 2
        and all(_is_number(v) for v in pair)
        and (low < pair[0] if open_low else low <= pair[0])
        and pair[0] <= pair[1] <= high
    )
    bound = "<" if open_low else "<="
    _check(config, name, ok, f"a (low, high) pair with {low} {bound} low <= high <= {high}")


def _uniform(batch: int, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    return low + (high - low) * torch.rand(batch, generator=generator, dtype=torch.float64)


class RandomOp(nn.Module):
    """One official op, applied to each image independently with probability ``p``.

    Only the chosen images are processed (and the others returned bit-for-bit), because even an identity
    resampling would change pixels by rounding.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def sample(self, batch: int, generator: torch.Generator | None = None) -> Params:
        """Parameters for ``batch`` images, each a float64 CPU tensor of shape (batch, ...)."""
        raise NotImplementedError

    def apply(self, images: torch.Tensor, params: Params) -> torch.Tensor:
        """The op on every image of ``images`` (B,3,H,W) float32 with the given per-image parameters."""
        raise NotImplementedError

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        batch = images.shape[0]
        chosen = torch.rand(batch, generator=generator) < self.p
        params = self.sample(batch, generator)  # drawn for every image, so later draws do not depend on `chosen`
        if not chosen.any():
            return images
        index = chosen.nonzero().squeeze(1)
        subset = {name: value[index].to(images.device) for name, value in params.items()}
        index = index.to(images.device)
        out = images.clone()
        out[index] = self.apply(images[index], subset).to(images.dtype)
        return out


class Perspective(RandomOp):
    """imgaug ``PerspectiveTransform(scale, keep_size=True, mode='replicate')``.

    kornia's ``RandomPerspective`` draws uniform corner offsets both ways and pads with a constant; imgaug pulls
    each corner inwards by ``|N(0, σ)|`` of the image size (σ uniform in ``scale`` per image) and stretches that
    quad back to the full image, replicating the border. imgaug does it as a warp to the quad's size plus a
    cubic resize; here it is one bilinear warp mapping the quad's outer edges onto the image's outer edges.
    """

    def __init__(self, scale: tuple[float, float] = (0.0, 0.06), p: float = 0.5) -> None:
        super().__init__(p)
        self.scale = scale

    def sample(self, batch: int, generator: torch.Generator | None = None) -> Params:
        sigma = _uniform(batch, *self.scale, generator)
        jitter = torch.randn(batch, 4, 2, generator=generator, dtype=torch.float64) * sigma[:, None, None]
        return {"offsets": jitter.abs().remainder(1.0)}  # (B, 4 corners tl tr br bl, xy) in image fractions

    def apply(self, images: torch.Tensor, params: Params) -> torch.Tensor:
        height, width = images.shape[-2:]
        size = images.new_tensor([width, height])
        unit = images.new_tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])  # the corners, tl tr br bl
        offsets = params["offsets"].to(images)
        inward = torch.where(unit.bool(), -offsets, offsets)  # towards the centre: + at 0, - at 1
        # Corners are pixel edges; pixel centres sit at integers, so edges are at -0.5 and size - 0.5.
        target = unit * size - 0.5
        source = (unit + inward) * size - 0.5
        matrix = kornia.geometry.transform.get_perspective_transform(source, target.expand_as(source))
        return kornia.geometry.transform.warp_perspective(
            images, matrix, (height, width), mode="bilinear", padding_mode="border", align_corners=True
        )


class Affine(RandomOp):
    """imgaug ``Affine(scale, rotate, shear, order=1, mode='reflect')`` about the image centre.

    Built from kornia.geometry primitives rather than ``kornia.augmentation.RandomAffine`` to keep imgaug's
    conventions: the same shear angle on both axes, pixel-centre sampling (``align_corners=True``) and
    reflection about the edge pixels (cv2 ``BORDER_REFLECT_101``, which imgaug's ``reflect`` means).
    Angles are degrees, positive clockwise on screen (imgaug's and ``get_affine_matrix2d``'s convention,
    the opposite of ``cv2.getRotationMatrix2D``); the centre is ((W-1)/2, (H-1)/2) as in imgaug.
    """

    def __init__(
        self, scale: tuple[float, float] = (0.7, 1.3), rotate: float = 40.0, shear: float = 0.1, p: float = 0.5
    ) -> None:
        super().__init__(p)
        self.scale, self.rotate, self.shear = scale, rotate, shear

    def sample(self, batch: int, generator: torch.Generator | None = None) -> Params:
        return {
            "scale": _uniform(batch, *self.scale, generator),
            "angle": _uniform(batch, -self.rotate, self.rotate, generator),
            "shear": _uniform(batch, -self.shear, self.shear, generator),
        }

    def apply(self, images: torch.Tensor, params: Params) -> torch.Tensor:
        batch, height, width = images.shape[0], *images.shape[-2:]
        scale, angle, shear = (params[name].to(images) for name in ("scale", "angle", "shear"))
        centre = images.new_tensor([(width - 1) / 2, (height - 1) / 2]).expand(batch, 2)
        shear = torch.deg2rad(shear)
        matrix = kornia.geometry.transform.get_affine_matrix2d(
            torch.zeros_like(centre), centre, scale[:, None].expand(batch, 2), angle, shear, shear
        )
        return kornia.geometry.transform.warp_affine(
            images, matrix[:, :2], (height, width), mode="bilinear", padding_mode="reflection", align_corners=True
        )


class OpticalDistortion(RandomOp):
    """albumentations 0.5.2 ``OpticalDistortion``: OpenCV's radial lens model with k1 = k2 = k.

    kornia has no augmentation for it; the sampling map is ``cv2.initUndistortRectifyMap`` with camera
    fx = W, fy = H, cx = W/2 + dx, cy = H/2 + dy and coefficients (k, k, 0, 0, 0), computed with kornia's
    ``distort_points`` and resampled like ``cv2.remap(INTER_LINEAR, BORDER_REFLECT_101)``. ``dx``, ``dy`` are
    whole pixels drawn as ``round(uniform(-shift_limit, shift_limit))``, exactly as 0.5.2 draws them (so the
    default limit 0.05 always gives 0: the official pipeline never shifts the centre).
    """

    def __init__(self, distort_limit: float = 0.05, shift_limit: float = 0.05, p: float = 0.5) -> None:
        super().__init__(p)
        self.distort_limit, self.shift_limit = distort_limit, shift_limit

    def sample(self, batch: int, generator: torch.Generator | None = None) -> Params:
        return {
            "k": _uniform(batch, -self.distort_limit, self.distort_limit, generator),
            "dx": _uniform(batch, -self.shift_limit, self.shift_limit, generator).round(),
            "dy": _uniform(batch, -self.shift_limit, self.shift_limit, generator).round(),
        }

    def apply(self, images: torch.Tensor, params: Params) -> torch.Tensor:
        batch, height, width = images.shape[0], *images.shape[-2:]
        # The map in float64 as OpenCV computes it (float32 drifts by ~5e-5 px at 384 px); it is only H×W points.
        k, dx, dy = (params[name].to(images.device, torch.float64) for name in ("k", "dx", "dy"))
        camera = torch.zeros(batch, 3, 3, dtype=torch.float64, device=images.device)
        camera[:, 0, 0], camera[:, 1, 1], camera[:, 2, 2] = width, height, 1.0
        camera[:, 0, 2], camera[:, 1, 2] = width * 0.5 + dx, height * 0.5 + dy
        # With no new camera matrix OpenCV rectifies into getDefaultNewCameraMatrix(centerPrincipalPoint=true):
        # the same focal lengths with the principal point at the pixel-centre middle ((W-1)/2, (H-1)/2).
        rectified = camera.clone()
        rectified[:, 0, 2], rectified[:, 1, 2] = (width - 1) / 2, (height - 1) / 2
        coefficients = torch.stack([k, k, torch.zeros_like(k), torch.zeros_like(k), torch.zeros_like(k)], dim=1)
        ys, xs = torch.meshgrid(
            torch.arange(height, dtype=torch.float64, device=images.device),
            torch.arange(width, dtype=torch.float64, device=images.device),
            indexing="ij",
        )
        pixels = torch.stack([xs, ys], dim=-1).reshape(1, -1, 2).expand(batch, -1, -1)
        source = kornia.geometry.calibration.distort_points(pixels, camera, coefficients, new_K=rectified)
        source = source.reshape(batch, height, width, 2).to(images.dtype)
        return kornia.geometry.transform.remap(
            images, source[..., 0], source[..., 1], mode="bilinear", padding_mode="reflection", align_corners=True
        )


class Clahe(RandomOp):
    """albumentations ``CLAHE``: OpenCV CLAHE on the L channel of CIE Lab, clip limit uniform in ``clip``.

    L is rounded to the 256 levels OpenCV's 8-bit Lab has before the histograms, as in the official uint8
    pipeline. kornia's ``equalize_clahe`` takes one clip limit per call, so images are equalised one by one.
    """

    def __init__(self, clip: tuple[float, float] = (1.0, 4.0), grid: int = 8, p: float = 0.5) -> None:
        super().__init__(p)
        self.clip, self.grid = clip, grid

    def sample(self, batch: int, generator: torch.Generator | None = None) -> Params:
        return {"clip": _uniform(batch, *self.clip, generator)}

    def apply(self, images: torch.Tensor, params: Params) -> torch.Tensor:
        lab = kornia.color.rgb_to_lab(images)
        lightness = (lab[:, :1] * 2.55).round().clamp(0, 255) / 255
        clips = params["clip"].tolist()
        equalised = torch.cat(
            [
                kornia.enhance.equalize_clahe(lightness[i : i + 1], clip_limit=float(clip), grid_size=(self.grid,) * 2)
                for i, clip in enumerate(clips)
            ]
        )
        return kornia.color.lab_to_rgb(torch.cat([equalised * 100, lab[:, 1:]], dim=1), clip=True)


class BrightnessContrast(RandomOp):
    """albumentations ``RandomBrightnessContrast`` with ``brightness_by_max``: clip(x·alpha + beta)."""

    def __init__(self, brightness: float = 0.2, contrast: float = 0.2, p: float = 0.5) -> None:
        super().__init__(p)
        self.brightness, self.contrast = brightness, contrast

    def sample(self, batch: int, generator: torch.Generator | None = None) -> Params:
        # albumentations draws alpha first, then beta.
        alpha = 1.0 + _uniform(batch, -self.contrast, self.contrast, generator)
        return {"alpha": alpha, "beta": _uniform(batch, -self.brightness, self.brightness, generator)}

    def apply(self, images: torch.Tensor, params: Params) -> torch.Tensor:
        scaled = kornia.enhance.adjust_contrast(images, params["alpha"].to(images), clip_output=False)
        return kornia.enhance.adjust_brightness(scaled, params["beta"].to(images), clip_output=True)


class HueSaturationValue(RandomOp):
    """albumentations ``HueSaturationValue``: additive shifts in OpenCV 8-bit HSV units, done in kornia's HSV.

    kornia's ``adjust_saturation`` is multiplicative, so the shifts are applied to ``rgb_to_hsv`` directly:
    hue h/180 of a turn (modulo one turn), saturation and value s/255 and v/255, clamped to [0, 1].
    """

    def __init__(self, hue: float = 5.0, saturation: float = 30.0, value: float = 5.0, p: float = 0.5) -> None:
        super().__init__(p)
        self.hue, self.saturation, self.value = hue, saturation, value

    def sample(self, batch: int, generator: torch.Generator | None = None) -> Params:
        return {
            "hue": _uniform(batch, -self.hue, self.hue, generator),
            "saturation": _uniform(batch, -self.saturation, self.saturation, generator),
            "value": _uniform(batch, -self.value, self.value, generator),
        }

    def apply(self, images: torch.Tensor, params: Params) -> torch.Tensor:
        hue, saturation, value = kornia.color.rgb_to_hsv(images).unbind(1)
        shift = {name: params[name].to(images)[:, None, None] for name in ("hue", "saturation", "value")}
        hue = (hue + shift["hue"] * (2 * math.pi / 180)).remainder(2 * math.pi)
        saturation = (saturation + shift["saturation"] / 255).clamp(0, 1)
        value = (value + shift["value"] / 255).clamp(0, 1)
        return kornia.color.hsv_to_rgb(torch.stack([hue, saturation, value], dim=1))


def centre_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The central size×size region by slicing (exact, unlike kornia's resampling ``center_crop``)."""
    top, left = (images.shape[-2] - size) // 2, (images.shape[-1] - size) // 2
    return images[..., top : top + size, left : left + size]


class LamaAugmentation(nn.Module):
    """Batched official 'distortions' augmentation; works on any device."""

    def __init__(self, config: AugmentConfig = AugmentConfig()) -> None:
        super().__init__()
        config.validate()
        self.config = config
        c, p = config, config.p
        self.geometric = nn.ModuleList()
        self.colour = nn.ModuleList()
        self.flip_p = p if c.variant != "no_augs" else 0.0
        if c.variant == "distortions":
            self.geometric.extend(
                [
                    Perspective(c.perspective_scale, p),
                    Affine(c.affine_scale, c.rotate, c.shear, p),
                    OpticalDistortion(c.distort_limit, c.shift_limit, p),
                ]
            )
            self.colour.extend(
                [
                    Clahe(c.clahe_clip, c.clahe_grid, p),
                    BrightnessContrast(c.brightness, c.contrast, p),
                    HueSaturationValue(c.hue, c.saturation, c.value, p),
                ]
            )

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B,3,H,W) window, float in [0,1] or uint8, H and W ≥ crop → (B,3,crop,crop) float32 on the same device.

        Random draws come from ``generator`` (a CPU generator) when given, else from torch's global RNG.
        """
        crop = self.config.crop_size
        if images.ndim != 4 or images.shape[1] != 3 or min(images.shape[-2:]) < crop:
            raise ValueError(f"expected images (B,3,H,W) with H,W >= crop_size {crop}; got {tuple(images.shape)}")
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        for op in self.geometric:
            x = op(x, generator)
        x = centre_crop(x, crop)
        # Not kornia's RandomHorizontalFlip: it draws from the global RNG only, and the loader must not reseed that.
        flipped = (torch.rand(x.shape[0], generator=generator) < self.flip_p).to(x.device)
        x = torch.where(flipped[:, None, None, None], x.flip(-1), x)
        for op in self.colour:
            x = op(x, generator)
        return x.clamp(0, 1).contiguous()
