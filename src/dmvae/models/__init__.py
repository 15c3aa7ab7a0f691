"""The library's models; each file holds one model and its config dataclass."""

from dmvae.models.base import MultimodalVAE
from dmvae.models.dmvae import DMVAE, DMVAEConfig
from dmvae.models.mmvae import MMVAE, MMVAEConfig
from dmvae.models.mvae import MVAE, MVAEConfig

MODEL_CLASSES = {
    "dmvae": (DMVAE, DMVAEConfig),
    "mvae": (MVAE, MVAEConfig),
    "mmvae": (MMVAE, MMVAEConfig),
}

__all__ = [
    "DMVAE",
    "DMVAEConfig",
    "MMVAE",
    "MMVAEConfig",
    "MODEL_CLASSES",
    "MVAE",
    "MVAEConfig",
    "MultimodalVAE",
]
