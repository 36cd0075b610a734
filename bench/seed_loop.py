"""The seed tutorial's PyTorch CIFAR-10 training, restated without torchvision (the baseline).

The tutorial (section 2, PyTorch) builds ``Autoencoder(3, 64, 256)``, a torchvision ``v2``
pipeline applied per image in ``DataLoader(batch_size=64, shuffle=True, num_workers=2)``
workers, and a ``train()`` that calls ``loss.item()`` every step and runs the test set each
epoch. This file keeps all of that; only torchvision is replaced, by the plain-torch code its
v2 kernels run on a uint8 tensor image:

- ``ToImage``: an HWC uint8 array viewed as CHW (so the image is channels-last in memory);
- ``RandomResizedCrop(32, antialias=True)``: ``get_params`` (10 attempts with scalar
  ``torch`` draws from the global generator, then the centre-crop fallback), a slice, and
  ``resize_image``: nothing when the box is already 32x32, else ``interpolate(bilinear,
  antialias=True, align_corners=False)``, on the uint8 image where torchvision's
  ``"AVX2" in get_cpu_capability()`` test passes and through float32 with rounding otherwise;
- ``RandomHorizontalFlip(0.5)``, ``RandomVerticalFlip(0.5)``: ``torch.rand(1) >= p`` skips;
- ``ToDtype(float32, scale=True)``, ``Normalize(0.5, 0.5)``: to [-1, 1].

The model classes are the tutorial's, verbatim apart from comments.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset


class Encoder(nn.Module):
    def __init__(self, num_input_channels: int, base_channel_size: int, latent_dim: int) -> None:
        super().__init__()
        c = base_channel_size
        self.net = nn.Sequential(
            nn.Conv2d(num_input_channels, c, kernel_size=3, padding=1, stride=2),  # 32 -> 16
            nn.GELU(),
            nn.Conv2d(c, c, kernel_size=3, padding=1),
            nn.GELU(),
            nn.Conv2d(c, 2 * c, kernel_size=3, padding=1, stride=2),  # 16 -> 8
            nn.GELU(),
            nn.Conv2d(2 * c, 2 * c, kernel_size=3, padding=1),
            nn.GELU(),
            nn.Conv2d(2 * c, 2 * c, kernel_size=3, padding=1, stride=2),  # 8 -> 4
            nn.GELU(),
            nn.Flatten(),
            nn.Linear(16 * c * 2, latent_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, num_input_channels: int, base_channel_size: int, latent_dim: int) -> None:
        super().__init__()
        c = base_channel_size
        self.linear = nn.Sequential(nn.Linear(latent_dim, 16 * c * 2), nn.GELU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(2 * c, 2 * c, 3, output_padding=1, padding=1, stride=2),  # 4 -> 8
            nn.GELU(),
            nn.Conv2d(2 * c, 2 * c, kernel_size=3, padding=1),
            nn.GELU(),
            nn.ConvTranspose2d(2 * c, c, 3, output_padding=1, padding=1, stride=2),  # 8 -> 16
            nn.GELU(),
            nn.Conv2d(c, c, kernel_size=3, padding=1),
            nn.GELU(),
            nn.ConvTranspose2d(
                c, num_input_channels, 3, output_padding=1, padding=1, stride=2
            ),  # 16 -> 32
            nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)
        x = x.reshape(x.shape[0], -1, 4, 4)  # (B, 2c*16) -> (B, 2c, 4, 4)
        return self.net(x)


class Autoencoder(nn.Module):
    def __init__(self, num_input_channels: int, base_channel_size: int, latent_dim: int) -> None:
        super().__init__()
        self.encoder = Encoder(num_input_channels, base_channel_size, latent_dim)
        self.decoder = Decoder(num_input_channels, base_channel_size, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latent = self.encoder(x)
        return latent, self.decoder(latent)


def crop_params(
    height: int, width: int, scale: tuple[float, float] = (0.08, 1.0), ratio=(3 / 4, 4 / 3)
) -> tuple[int, int, int, int]:
    """``RandomResizedCrop`` parameters ``(top, left, h, w)``, drawn as torchvision draws them."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1]).item()
        aspect_ratio = torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1])).item()
        w = round(math.sqrt(target_area * aspect_ratio))
        h = round(math.sqrt(target_area / aspect_ratio))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, size=(1,)).item())
            left = int(torch.randint(0, width - w + 1, size=(1,)).item())
            return top, left, h, w
    in_ratio = width / height  # fallback: centre crop with the ratio clamped
    if in_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        h, w = height, round(height * max(ratio))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


NATIVE_UINT8_BILINEAR = "AVX2" in torch.backends.cpu.get_cpu_capability()  # torchvision's test


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """torchvision v2 ``resize_image`` for a (C, H, W) uint8 image, bilinear with antialias."""
    if tuple(image.shape[-2:]) == size:
        return image
    x = image[None]
    if not NATIVE_UINT8_BILINEAR:
        x = x.to(torch.float32)
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    if not NATIVE_UINT8_BILINEAR:
        x = x.round_().to(torch.uint8)
    return x[0]


def to_float(image: torch.Tensor) -> torch.Tensor:
    """``ToDtype(float32, scale=True)`` then ``Normalize(0.5, 0.5)``: uint8 -> [-1, 1]."""
    x = image.to(torch.float32).mul_(1.0 / 255)
    return x.sub_(0.5).div_(0.5)


def train_transform(image: torch.Tensor) -> torch.Tensor:
    """The seed's ``trn_transforms`` on one (C, H, W) uint8 image."""
    height, width = image.shape[-2:]
    top, left, h, w = crop_params(height, width)
    image = resize_image(image[:, top : top + h, left : left + w], (32, 32))
    if not torch.rand(1) >= 0.5:
        image = image.flip(-1)
    if not torch.rand(1) >= 0.5:
        image = image.flip(-2)
    return to_float(image)


def test_transform(image: torch.Tensor) -> torch.Tensor:
    """The seed's ``test_transforms``: ``Resize(32)`` (nothing at 32x32) and the scaling."""
    return to_float(resize_image(image, (32, 32)))


class ImageDataset(Dataset):
    """uint8 images held HWC (as torchvision's CIFAR10 holds them), transformed one at a time."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None, transform) -> None:
        self.images = images.permute(0, 2, 3, 1).contiguous()  # (N, C, H, W) -> (N, H, W, C)
        # an unlabelled source (npz without y_) gets label 0: the loop never reads labels
        self.labels = labels if labels is not None else torch.zeros(len(images), dtype=torch.long)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = self.images[i].permute(2, 0, 1)  # ToImage: an HWC array viewed as CHW
        return self.transform(image), int(self.labels[i])


def make_loaders(train_set, test_set, batch_size: int = 64, num_workers: int = 2):
    """The seed's ``trn_loader`` and ``test_loader`` over ``aekit.ImageSet``-like sets."""
    trn = ImageDataset(train_set.images, train_set.labels, train_transform)
    test = ImageDataset(test_set.images, test_set.labels, test_transform)
    return (
        DataLoader(trn, batch_size=batch_size, shuffle=True, num_workers=num_workers),
        DataLoader(test, batch_size=batch_size, shuffle=False, num_workers=num_workers),
    )


def unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped, as aekit scores reconstructions."""
    return ((x + 1) / 2).clamp(0, 1)


def train(
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    trn_loader: DataLoader,
    test_loader: DataLoader,
    device: torch.device,
    num_epochs: int,
) -> list[dict[str, Any]]:
    """The seed's ``train()``, with clocks and a [0, 1]-scale test MSE added, tqdm and plots
    left out. ``train_seconds`` runs from asking ``trn_loader`` for its first batch (so it
    includes starting the workers, as every epoch does) to the last ``loss.item()``."""
    rows = []
    for epoch in range(num_epochs):
        model.train()
        trn_loss = 0.0
        t0 = time.perf_counter()
        for inputs, _ in trn_loader:
            inputs = inputs.to(device)
            _, outputs = model(inputs)
            loss = criterion(outputs, inputs)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            trn_loss += loss.item() * inputs.size(0)
        train_seconds = time.perf_counter() - t0
        trn_epoch_loss = trn_loss / len(trn_loader.dataset)

        with torch.no_grad():
            model.eval()
            test_loss = 0.0
            unit_sq = 0.0
            for inputs, _ in test_loader:
                inputs = inputs.to(device)
                _, outputs = model(inputs)
                loss = criterion(outputs, inputs)
                test_loss += loss.item() * inputs.size(0)
                unit_sq += (unit(outputs) - unit(inputs)).pow(2).flatten(1).mean(1).sum().item()
            n_test = len(test_loader.dataset)
        rows.append(
            {
                "epoch": epoch + 1,
                "train_loss": trn_epoch_loss,
                "test_loss": test_loss / n_test,
                "test_mse": unit_sq / n_test,
                "train_seconds": round(train_seconds, 3),
                "epoch_seconds": round(time.perf_counter() - t0, 3),
                "images": len(trn_loader.dataset),
            }
        )
    return rows
