"""The library's models; each file holds one model, its config dataclass and its registration
(name and the paper's settings per experiment) in `dmvae.models.registry`."""

from dmvae.models.base import MultimodalVAE
from dmvae.models.dmvae import DMVAE, DMVAEConfig
from dmvae.models.mmvae import MMVAE, MMVAEConfig
from dmvae.models.mmvaeplus import MMVAEPlus, MMVAEPlusConfig
from dmvae.models.mopoe import MoPoE, MoPoEConfig
from dmvae.models.mvae import MVAE, MVAEConfig
from dmvae.models.registry import (
    MODELS,
    Listing,
    ModelSpec,
    Preset,
    get_model,
    list_models,
    register_model,
)

__all__ = [
    "DMVAE",
    "DMVAEConfig",
    "MMVAE",
    "MMVAEConfig",
    "MMVAEPlus",
    "MMVAEPlusConfig",
    "MODELS",
    "MoPoE",
    "MoPoEConfig",
    "MVAE",
    "MVAEConfig",
    "ModelSpec",
    "MultimodalVAE",
    "Preset",
    "Listing",
    "get_model",
    "list_models",
    "register_model",
]
