"""Objectives as pure functions of tensors: product of experts, KL, log-densities, InfoNCE,
the total-correlation density-ratio estimate and the DReG estimator.

Nothing here holds state, so each term can be tested against a direct computation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from dmvae.devices import to_device

LOG_2PI = math.log(2 * math.pi)


def product_of_experts(
    mu: Tensor, logvar: Tensor, mask: Tensor | None = None, prior_expert: bool = False
) -> tuple[Tensor, Tensor]:
    """Gaussian product of experts (closed form, precision-weighted), over the first dimension.

    mu, logvar: [E, B, D]; mask: bool [E, B], False drops expert e for sample b. The joint
    precision is sum_e exp(-logvar_e), computed as a logsumexp for stability; the joint mean is
    the precision-weighted mean. `prior_expert` adds a N(0, I) expert. A sample with no expert
    at all gets N(0, I), the product of an empty set of experts times the prior it falls back to.
    """
    log_prec = -logvar
    if mask is not None:
        log_prec = log_prec.masked_fill(~mask[..., None], float("-inf"))
    if prior_expert:
        zeros = torch.zeros_like(log_prec[:1])
        log_prec = torch.cat([log_prec, zeros])
        mu = torch.cat([mu, torch.zeros_like(mu[:1])])
    joint_log_prec = torch.logsumexp(log_prec, dim=0)
    empty = torch.isinf(joint_log_prec)
    safe = torch.where(empty, torch.zeros_like(joint_log_prec), joint_log_prec)
    weights = torch.exp(log_prec - safe)
    joint_mu = (weights * mu).sum(0)
    return torch.where(empty, 0.0, joint_mu), torch.where(empty, 0.0, -safe)


def subset_mean_nll(nll: Tensor, in_a: Tensor, in_b: Tensor) -> Tensor:
    """DMVAE release's reconstruction term for one modality: the mean NLL over the rows whose
    subset A holds it plus the mean over the rows whose complement B holds it (an empty part
    counts 0).

    About twice a per-sample mean, and the released beta, gamma and delta were tuned against
    it; a row in the smaller part weighs more. nll: [B]; in_a, in_b: bool [B].
    """
    a, b = in_a.to(nll.dtype), in_b.to(nll.dtype)
    return (nll * a).sum() / a.sum().clamp_min(1.0) + (nll * b).sum() / b.sum().clamp_min(1.0)


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of `values` [B] over the rows where `mask` [B] holds (0 if none)."""
    w = mask.to(values.dtype)
    return (values * w).sum() / w.sum().clamp_min(1.0)


def kl_normal_standard(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) = 0.5 * sum(mu^2 + var - 1 - logvar), over the last dim."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def gaussian_log_prob(x: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """Elementwise log N(x; mu, exp(logvar))."""
    return -0.5 * (LOG_2PI + logvar + (x - mu).pow(2) * torch.exp(-logvar))


def laplace_log_prob(x: Tensor, loc: Tensor, scale: float | Tensor) -> Tensor:
    """Elementwise log Laplace(x; loc, scale) = -|x - loc| / scale - log(2 scale)."""
    log_2scale = torch.log(2 * scale) if isinstance(scale, Tensor) else math.log(2 * scale)
    return -(x - loc).abs() / scale - log_2scale


class _L1Distance(torch.autograd.Function):
    """sum |loc - x| over trailing dimensions in one reduction, with a one-pass backward."""

    @staticmethod
    def forward(ctx, loc: Tensor, x: Tensor, event_dims: int) -> Tensor:
        diff = loc - x
        ctx.save_for_backward(diff)
        ctx.event_dims, ctx.x_shape = event_dims, x.shape
        return torch.linalg.vector_norm(diff.flatten(diff.dim() - event_dims), ord=1, dim=-1)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        (diff,) = ctx.saved_tensors
        g = torch.sign(diff).mul_(grad.reshape(grad.shape + (1,) * ctx.event_dims))
        grad_x = (-g).sum_to_size(ctx.x_shape) if ctx.needs_input_grad[1] else None
        return g if ctx.needs_input_grad[0] else None, grad_x, None


def l1_distance(loc: Tensor, x: Tensor, event_dims: int) -> Tensor:
    """sum |loc - x| over the last `event_dims` dimensions of the broadcast difference.

    The Laplace log-likelihood of every decoded sample needs it (M x M x K samples for MMVAE);
    the fused backward saves three passes over the data per call.
    """
    if x.dim() > loc.dim():
        return (loc - x).abs().flatten(x.dim() - event_dims).sum(-1)
    return _L1Distance.apply(loc, x, event_dims)


def bernoulli_log_prob(x: Tensor, probs: Tensor, eps: float = 1e-6) -> Tensor:
    """Elementwise log Bernoulli(x; probs) for x in [0, 1] (probs clamped away from 0 and 1)."""
    p = probs.clamp(eps, 1 - eps)
    return x * torch.log(p) + (1 - x) * torch.log1p(-p)


def sum_except_batch(t: Tensor, batch_dims: int = 1) -> Tensor:
    """Sum over every dimension after the first `batch_dims`."""
    return t.flatten(start_dim=batch_dims).sum(-1)


def reparameterize(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """A sample mu + exp(logvar / 2) * eps that keeps gradients to mu and logvar."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


def info_nce(
    z_a: Tensor,
    z_b: Tensor,
    temperature: float = 1.0,
    cosine: bool = True,
    valid: Tensor | None = None,
) -> Tensor:
    """Symmetric NT-Xent: each of the 2N views must pick its partner among the 2N - 1 others.

    Similarities are cosine (L2-normalised) over `temperature`; the self-similarity diagonal is
    masked out with -inf, so every row has one positive and 2N - 2 negatives. Returns the mean
    cross-entropy over the 2N rows (>= 0); `info_nce_bound` turns it into the MI lower bound.
    `valid` (bool [N]) drops the pairs whose `z_b` does not exist (incomplete data): they are
    neither scored nor used as negatives; the mean is then over the valid pairs' 2 rows each.
    """
    n = z_a.shape[0]
    z = torch.cat([z_a, z_b])
    if cosine:
        z = F.normalize(z, dim=-1)
    sim = z @ z.T / temperature
    excluded = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    if valid is not None:  # and the z_b of invalid pairs, in the same pass
        excluded = excluded | torch.cat([torch.zeros_like(valid), ~valid])[None]
    sim = sim.masked_fill(excluded, float("-inf"))
    target = torch.arange(2 * n, device=z.device).roll(n)
    if valid is None:
        return F.cross_entropy(sim, target)
    rows = torch.cat([valid, valid])
    # an invalid pair's rows have no finite target: select them away before the mean
    per_row = torch.where(rows, F.cross_entropy(sim, target, reduction="none"), 0.0)
    return per_row.sum() / rows.sum().clamp_min(1)


def info_nce_bound(loss: Tensor | float, batch_size: int) -> float:
    """The InfoNCE mutual-information lower bound log(2N - 1) - loss of `info_nce`."""
    return math.log(2 * batch_size - 1) - float(loss)


def permute_batch(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Rows of `x` in a random order: samples of the product of marginals when paired with
    an unpermuted partner (the density-ratio trick)."""
    device = generator.device if generator is not None else x.device
    perm = torch.randperm(x.shape[0], generator=generator, device=device)
    return x[to_device(perm, x.device)]


def permutation_within(rows: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Indices [B] that shuffle the rows where `rows` (bool [B]) holds uniformly among
    themselves and leave the others in place: `permute_batch` of those rows, in a batch whose
    shape does not depend on how many they are (no host synchronisation on a GPU)."""
    n = rows.shape[0]
    place = torch.arange(n, device=rows.device)
    keys = torch.rand(n, generator=generator, device=rows.device)
    # The selected rows, first in a random order and then in index order; the others after
    # them, in index order in both lists, so that they map to themselves.
    shuffled = torch.argsort(torch.where(rows, keys, 2.0 + place / n))
    ordered = torch.argsort(torch.where(rows, 0, 1 + place))
    return torch.empty_like(place).scatter_(0, ordered, shuffled)


def tc_discriminator_loss(
    logits_joint: Tensor, logits_permuted: Tensor, weight: Tensor | None = None
) -> Tensor:
    """Cross-entropy of a discriminator telling joint samples (class 0) from permuted ones (1);
    with `weight` (bool [B]), the mean over the rows it selects."""
    zeros = torch.zeros(logits_joint.shape[0], dtype=torch.long, device=logits_joint.device)
    ones = torch.ones(logits_permuted.shape[0], dtype=torch.long, device=logits_permuted.device)
    if weight is None:
        return 0.5 * (F.cross_entropy(logits_joint, zeros) + F.cross_entropy(logits_permuted, ones))
    joint = F.cross_entropy(logits_joint, zeros, reduction="none")
    permuted = F.cross_entropy(logits_permuted, ones, reduction="none")
    return 0.5 * (masked_mean(joint, weight) + masked_mean(permuted, weight))


def tc_estimate(logits_joint: Tensor, weight: Tensor | None = None) -> Tensor:
    """Total correlation by the density-ratio trick: mean log D / (1 - D) on joint samples,
    i.e. mean(logit_joint - logit_permuted) of an optimal discriminator; with `weight` (bool
    [B]), the mean over the rows it selects."""
    ratio = logits_joint[:, 0] - logits_joint[:, 1]
    return ratio.mean() if weight is None else masked_mean(ratio, weight)


def laplace_rsample(
    loc: Tensor, scale: Tensor, k: int, generator: torch.Generator | None = None
) -> Tensor:
    """`k` reparameterised samples [k, *loc.shape] of Laplace(loc, scale) by inverse CDF."""
    u = torch.rand((k, *loc.shape), generator=generator, device=loc.device, dtype=loc.dtype)
    u = (u - 0.5).clamp(-0.5 + 1e-7, 0.5 - 1e-7)
    return loc - scale * torch.sign(u) * torch.log1p(-2 * u.abs())


def iwae_looser(log_weights: Tensor) -> Tensor:
    """Importance-weighted bound per expert: logsumexp over K samples of log w minus log K.

    log_weights: [E, K, B] -> [E, B]. MMVAE's "looser" bound is the mean of this over the
    experts E (the average sits outside the log).
    """
    k = log_weights.shape[1]
    return torch.logsumexp(log_weights, dim=1) - math.log(k)


def dreg_looser(log_weights: Tensor, z: Tensor, beta: float = 1.0) -> Tensor:
    """DReG surrogate of `iwae_looser`, per expert and sample ([E, B]), to MAXIMISE.

    log_weights [E, K, B] must be computed with the posterior's parameters detached inside
    log q (so their only path to the encoder is through z [E, K, B, D]). With normalised weights
    w~ = softmax_K(log w), the IWAE gradient is sum_k w~_k d log w_k. DReG (Tucker et al., 2019)
    replaces the encoder part by sum_k w~_k^2 d log w_k / d z_k * d z_k / d phi: the surrogate
    sum_k w~_k log w_k (w~ held constant) gives decoder and prior gradients w~_k, and a hook on z
    scales z's gradient by a further w~_k, making the encoder weight w~_k^2 as Tucker et al.
    define it. (The official MMVAE code registers its hook where it never fires, so its encoder
    weight is w~_k; we follow the definition, see docs/protocol.md.)

    `beta` is the weight of log q inside log w (beta-weighted bounds such as MMVAE+'s): the same
    identity then gives the encoder weight (1 - beta) w~_k + beta w~_k^2, which is Tucker et
    al.'s at beta = 1 and the path gradient alone at K = 1 (docs/protocol.md, "MMVAE+").

    The hook scales every gradient reaching z, so z must feed nothing but these log weights, and
    this is called once per z. Its value is not the bound: sum_k w~_k log w_k =
    iwae_looser + log K - H(w~) >= iwae_looser (H the entropy of w~); report `iwae_looser`.
    """
    with torch.no_grad():
        w = torch.softmax(log_weights, dim=1)
        path_weight = (beta * w + (1.0 - beta)).unsqueeze(-1)
    if z.requires_grad:
        z.register_hook(lambda grad: grad * path_weight)
    return (w * log_weights).sum(1)


def kl_anneal_weight(step: int, anneal_steps: int) -> float:
    """Linear KL annealing from 0 to 1 over `anneal_steps` iterations (1 if there is none)."""
    if anneal_steps <= 0:
        return 1.0
    return min(1.0, step / anneal_steps)
