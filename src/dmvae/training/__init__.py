"""Training: the loop (`loop`), the one optimisation step (`step`), checkpointed state
(`state`) and what a run reports (`log`)."""

from dmvae.training.log import COLLAPSE_CHECK_FROM
from dmvae.training.loop import load_run, same_run, train
from dmvae.training.state import CHECKPOINT
from dmvae.training.step import TrainStep

__all__ = ["CHECKPOINT", "COLLAPSE_CHECK_FROM", "TrainStep", "load_run", "same_run", "train"]
