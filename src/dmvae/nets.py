"""The paper's encoders and decoders (docs/protocol.md, "Architectures").

Every encoder maps a batch of images to the mean and log-variance of one Gaussian over
`latent_dim` dimensions. DMVAE reads the first `style_dim` of them as the style head and the rest
as the content head: two linear heads from one trunk are exactly one wider head, split. Every
decoder maps a latent vector to the location of the likelihood (sigmoid output for MNIST, raw
output for SVHN as in the authors' release and for PolyMNIST as in MoPoE's).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MLPEncoder(nn.Module):
    """Flatten, a ReLU MLP trunk, then linear mean and log-variance heads."""

    def __init__(self, in_shape: tuple[int, ...], hidden: tuple[int, ...], latent_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = 1
        for size in in_shape:
            width *= size
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.trunk = nn.Sequential(*layers)
        self.heads = nn.Linear(width, 2 * latent_dim)
        self.latent_dim = latent_dim

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.heads(self.trunk(x)).chunk(2, dim=-1)
        return mu, logvar


class MLPDecoder(nn.Module):
    """A ReLU MLP from the latent to the image, with an optional sigmoid on the output."""

    def __init__(
        self, latent_dim: int, hidden: tuple[int, ...], out_shape: tuple[int, ...], sigmoid: bool
    ) -> None:
        super().__init__()
        width = 1
        for size in out_shape:
            width *= size
        layers: list[nn.Module] = []
        prev = latent_dim
        for h in hidden:
            layers += [nn.Linear(prev, h), nn.ReLU()]
            prev = h
        layers.append(nn.Linear(prev, width))
        if sigmoid:
            layers.append(nn.Sigmoid())
        layers.append(nn.Unflatten(-1, out_shape))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class SVHNEncoder(nn.Module):
    """Conv 3-32-64-128 (k4, s2, p1, ReLU) to 4x4, then a 4x4 conv head to mean and log-variance."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(3, 32, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(64, 128, 4, 2, 1),
            nn.ReLU(),
        )
        self.heads = nn.Conv2d(128, 2 * latent_dim, 4, 1, 0)
        self.latent_dim = latent_dim

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.heads(self.trunk(x)).flatten(1).chunk(2, dim=-1)
        return mu, logvar


class SVHNDecoder(nn.Module):
    """ConvTranspose latent-128 (4x4), then 128-64-32-3 (k4, s2, p1); raw output is the location."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Unflatten(-1, (latent_dim, 1, 1)),
            nn.ConvTranspose2d(latent_dim, 128, 4, 1, 0),
            nn.ReLU(),
            nn.ConvTranspose2d(128, 64, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(32, 3, 4, 2, 1),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class PolyMNISTEncoder(nn.Module):
    """MoPoE's PolyMNIST encoder: conv 3-32-64-128 (k3, s2, p1, ReLU) to 4x4, linear
    2048 -> latent with ReLU, then linear mean and log-variance heads."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(3, 32, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(64, 128, 3, 2, 1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2048, latent_dim),
            nn.ReLU(),
        )
        self.heads = nn.Linear(latent_dim, 2 * latent_dim)
        self.latent_dim = latent_dim

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.heads(self.trunk(x)).chunk(2, dim=-1)
        return mu, logvar


def polymnist_decoder(latent_dim: int) -> nn.Sequential:
    """MoPoE's PolyMNIST decoder: linear latent -> 2048 with ReLU, 128x4x4, ConvTranspose
    128-64-32-3 (k3, s2, p1; output padding 0, 1, 1) to 3x28x28; raw output is the location."""
    return nn.Sequential(
        nn.Linear(latent_dim, 2048),
        nn.ReLU(),
        nn.Unflatten(-1, (128, 4, 4)),
        nn.ConvTranspose2d(128, 64, 3, 2, 1),
        nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 3, 2, 1, output_padding=1),
        nn.ReLU(),
        nn.ConvTranspose2d(32, 3, 3, 2, 1, output_padding=1),
    )


def polymnist_encoder(latent_dim: int) -> PolyMNISTEncoder:
    return PolyMNISTEncoder(latent_dim)


def mnist_encoder(latent_dim: int) -> MLPEncoder:
    """MNIST-SVHN experiment: 784-400, ReLU, heads 400 -> latent."""
    return MLPEncoder((1, 28, 28), (400,), latent_dim)


def mnist_decoder(latent_dim: int) -> MLPDecoder:
    """MNIST-SVHN experiment: latent-400, ReLU, 400-784, sigmoid."""
    return MLPDecoder(latent_dim, (400,), (1, 28, 28), sigmoid=True)


def paired_mnist_encoder(latent_dim: int) -> MLPEncoder:
    """Paired MNIST: 784-512-512 with ReLU, heads 512 -> latent."""
    return MLPEncoder((1, 28, 28), (512, 512), latent_dim)


def paired_mnist_decoder(latent_dim: int) -> MLPDecoder:
    """Paired MNIST: latent-512-512-512-784 with ReLU, sigmoid."""
    return MLPDecoder(latent_dim, (512, 512, 512), (1, 28, 28), sigmoid=True)


def svhn_encoder(latent_dim: int) -> SVHNEncoder:
    return SVHNEncoder(latent_dim)


def svhn_decoder(latent_dim: int) -> SVHNDecoder:
    return SVHNDecoder(latent_dim)


def release_init(module: nn.Module) -> None:
    """The DMVAE release's initialisation, in place: weights N(0, 0.05) and zero biases for every
    Linear and Conv2d (ConvTranspose2d keeps PyTorch's default, as in the release)."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.Conv2d):
            nn.init.normal_(layer.weight, 0.0, 0.05)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class TCDiscriminator(nn.Module):
    """D_m of DMVAE: branches s->500->500->500 and c->500->500->500, then 1000->1000->1000->2.

    Logit 0 scores "joint sample (s_m, c)", logit 1 "product of marginals" (s_m permuted).
    """

    def __init__(self, style_dim: int, content_dim: int, width: int = 500) -> None:
        super().__init__()

        def branch(d: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Linear(d, width),
                nn.LeakyReLU(0.2),
                nn.Linear(width, width),
                nn.LeakyReLU(0.2),
                nn.Linear(width, width),
                nn.LeakyReLU(0.2),
            )

        self.style_branch = branch(style_dim)
        self.content_branch = branch(content_dim)
        self.joint = nn.Sequential(
            nn.Linear(2 * width, 2 * width),
            nn.LeakyReLU(0.2),
            nn.Linear(2 * width, 2 * width),
            nn.LeakyReLU(0.2),
            nn.Linear(2 * width, 2),
        )

    def forward(self, s: Tensor, c: Tensor) -> Tensor:
        h = (self.style_branch(s), self.content_branch(c))
        return self.joint(torch.cat(h, dim=-1))
