"""dmvae: disentangling multimodal VAEs, their baselines, benchmark data and evaluation."""

__version__ = "0.1.0"


def train(config, resume: bool = False):
    """Train the model a `dmvae.training.TrainConfig` describes; returns it in eval mode."""
    from dmvae.training import train as _train

    return _train(config, resume=resume)
