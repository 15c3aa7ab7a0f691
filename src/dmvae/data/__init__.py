"""Benchmark data sets as in-memory tensors, and the common batch format."""

from dmvae.data.batch import Batch, MultimodalData, make_batch

__all__ = ["Batch", "MultimodalData", "make_batch"]
