"""Test log-likelihoods, as the MMVAE and MoPoE papers report them: the joint log p(x_1..M)
and the conditional log p(x_t | x_-t) of each modality given all the others, importance-sampled
with K samples per test tuple, in nats per tuple (docs/protocol.md, "Test log-likelihoods").

Joint: z_k ~ q(z | X), the model's own joint posterior (MVAE's and DMVAE's product of experts,
MMVAE's and MMVAE+'s mixture of experts, MoPoE's mixture of subset products), and
log p(X) ~ logsumexp_k [log p(z_k) + log p(X | z_k) - log q(z_k | X)] - log K, a lower bound
in expectation (Jensen) that tightens as K grows.
Conditional: z_k ~ q(z | x_S) standing in for p(z | x_S) (MMVAE's and MultiVae's estimate),
log p(x_t | x_S) ~ logsumexp_k log p(x_t | z_k) - log K.
A model with modality-specific latents (DMVAE's style, MMVAE+'s w) draws each scored
modality's own latent from that modality's posterior and weights it by prior over posterior
(`decoder_latents`): the style is marginalised by importance sampling in both estimates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from dmvae.evaluation.coherence import mapping_name
from dmvae.evaluation.context import EvalContext
from dmvae.models.base import MultimodalVAE

ROWS = 20_000
"""Latent rows decoded per decoder call: K is split into chunks of ROWS // batch samples."""


@torch.inference_mode()
def log_likelihood(
    model: MultimodalVAE,
    inputs: Mapping[str, Tensor],
    targets: Mapping[str, Tensor],
    scored: Sequence[str],
    given: Sequence[str] = (),
    k: int = 1000,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Per row [B], log p(x_scored) (`given` empty) or log p(x_scored | x_given), estimated
    with `k` importance samples; `inputs` are what the encoders take, `targets` what the
    likelihoods score (the batch's)."""
    rows = next(iter(targets.values())).shape[0]
    q = model.shared_posterior(inputs, tuple(given) or tuple(scored))
    prior = None if given else model.shared_prior()
    chunk = max(1, ROWS // rows)
    total = None
    for start in range(0, k, chunk):
        n = min(chunk, k - start)
        z = q.sample(n, generator)  # [n, B, D]
        log_w = z.new_zeros(n, rows) if prior is None else prior.log_prob(z) - q.log_prob(z)
        for t in scored:
            latent, log_ratio = model.decoder_latents(inputs, t, z, generator)
            loc = model.decoders[t](latent.flatten(0, 1)).unflatten(0, (n, rows))
            log_w = log_w + log_ratio + model.likelihoods[t].log_density(targets[t], loc)
        part = torch.logsumexp(log_w, dim=0)
        total = part if total is None else torch.logaddexp(total, part)
    return total - math.log(k)


def likelihood_maps(names: Sequence[str]) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """What the metric scores, by entry name -> (given, scored): "joint" (nothing given, all
    scored) and, with two or more modalities, each one given all the others ("a+b->c")."""
    maps = {"joint": ((), tuple(names))}
    if len(names) > 1:
        for t in names:
            others = tuple(m for m in names if m != t)
            maps[mapping_name(others, t)] = (others, (t,))
    return maps


def loglik(ctx: EvalContext) -> dict:
    """Mean test log-likelihoods (nats per tuple) on `loglik_test` samples of the test split."""
    s, model = ctx.settings, ctx.model
    data = ctx.test.random_subset(s.loglik_test, s.seed)
    maps = likelihood_maps(model.modalities)
    sums = dict.fromkeys(maps, 0.0)
    batches = data.batches(s.batch_size, shuffle=False, generator=ctx.generator)
    total = data.num_batches(s.batch_size)
    for batch in tqdm(batches, desc="log-likelihood", total=total, disable=not s.progress):
        with model.reuse_encodings():
            for key, (given, scored) in maps.items():
                values = log_likelihood(
                    model,
                    batch.inputs,
                    batch.targets,
                    scored,
                    given,
                    s.loglik_samples,
                    ctx.generator,
                )
                sums[key] += float(values.sum())
    means = {key: value / len(data) for key, value in sums.items()}
    conditional = {key: v for key, v in means.items() if key != "joint"}
    out = {"joint": means["joint"], "tuples": len(data)}
    if conditional:
        out["conditional"] = conditional
        out["leave_one_out_mean"] = sum(conditional.values()) / len(conditional)
    return {"loglik": out}
