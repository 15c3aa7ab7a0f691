"""The batch format shared by every model, and an in-memory batch iterator.

Whole data sets live on the chosen device as uint8 tensors. A batch is an index gather plus a
float conversion (and, for noisy modalities, fresh Gaussian noise drawn on the device), so the
training loop never runs per-sample Python and needs no DataLoader workers.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import Dataset

from dmvae.data.materialise import materialise
from dmvae.errors import DataError


@dataclass
class Batch:
    """A multimodal mini-batch.

    `inputs` is what encoders see (noisy for denoising set-ups), `targets` what decoders
    reconstruct (clean, in [0, 1]). `mask[:, k]` says whether modality `modalities[k]` is
    observed for each sample, so missing modalities are expressed without changing shapes.
    """

    inputs: dict[str, Tensor]
    targets: dict[str, Tensor]
    labels: Tensor
    mask: Tensor
    modalities: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def device(self) -> torch.device:
        return self.labels.device

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            inputs={k: v.to(device) for k, v in self.inputs.items()},
            targets={k: v.to(device) for k, v in self.targets.items()},
            labels=self.labels.to(device),
            mask=self.mask.to(device),
            modalities=self.modalities,
        )

    def observe(self, names: Sequence[str]) -> Batch:
        """The same batch with only `names` marked as observed."""
        unknown = set(names) - set(self.modalities)
        if unknown:
            raise KeyError(
                f"unknown modalities {sorted(unknown)}; this batch has {list(self.modalities)}"
            )
        keep = torch.tensor([m in names for m in self.modalities], device=self.mask.device)
        return Batch(self.inputs, self.targets, self.labels, self.mask & keep, self.modalities)


def make_batch(
    inputs: Mapping[str, Tensor],
    labels: Tensor | None = None,
    targets: Mapping[str, Tensor] | None = None,
    mask: Tensor | None = None,
) -> Batch:
    """Build a `Batch` from user tensors (all modalities observed unless `mask` says otherwise)."""
    if not inputs:
        raise ValueError("a batch needs at least one modality")
    modalities = tuple(inputs)
    n = {k: int(v.shape[0]) for k, v in inputs.items()}
    if len(set(n.values())) != 1:
        raise ValueError(f"modalities have different batch sizes: {n}")
    size = next(iter(n.values()))
    device = next(iter(inputs.values())).device
    if labels is None:
        labels = torch.full((size,), -1, dtype=torch.long, device=device)
    if mask is None:
        mask = torch.ones(size, len(modalities), dtype=torch.bool, device=device)
    if tuple(mask.shape) != (size, len(modalities)):
        raise ValueError(
            f"mask has shape {tuple(mask.shape)}, expected (batch, modalities) = "
            f"({size}, {len(modalities)})"
        )
    return Batch(dict(inputs), dict(targets or inputs), labels, mask.bool(), modalities)


def encoder_input(x: Tensor) -> Tensor:
    """What encoders and decoders see of stored or user data: uint8 images scaled to [0, 1],
    any other tensor as float32. The one conversion, for batches and for inference alike."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


class MultimodalData:
    """A paired multimodal data set held as tensors on one device, complete or with some
    modalities missing per sample.

    `bank_labels[m]` (optional) labels every image of bank m independently of the pairing, so
    pairings can be checked (`dmvae data summary`); data given row by row (`from_tensors`) have
    one label per row and nothing to check. `labelled` is False when no labels were given
    (every label is then 0, and the metrics that score labels are skipped).

    Each modality has a bank `images[m]` ([N_m, ...]) and an index `index[m]` ([N] int64) into
    it; sample i is `(images[m][index[m][i]] for m)` with label `labels[i]`. A uint8 bank holds
    images (scaled to [0, 1] per batch); a floating-point bank holds any other modality (attribute
    vectors, features, embedded tokens) and is used as it is.
    Pairings with repeats (MNIST-SVHN has 1.1M pairs over 60k + 73k images) thus cost one
    int64 per pair, not one image. `noise_std[m] > 0` adds fresh N(0, std^2) noise to the
    encoder input of modality m at every batch; the target stays clean.

    `observed` ([N, M] bool, columns in `modalities` order; None when complete) says which
    modalities each sample has: batches carry it as `Batch.mask` (the models leave missing
    modalities out of their objectives) and hold zeros where a modality is missing. Every
    sample has at least one modality.
    """

    def __init__(
        self,
        images: Mapping[str, Tensor],
        index: Mapping[str, Tensor],
        labels: Tensor,
        noise_std: Mapping[str, float] | None = None,
        bank_labels: Mapping[str, Tensor] | None = None,
        labelled: bool = True,
        observed: Tensor | None = None,
    ) -> None:
        if set(images) != set(index):
            raise ValueError(
                f"images and index name different modalities: {set(images)} vs {set(index)}"
            )
        self.modalities: tuple[str, ...] = tuple(images)
        for m in self.modalities:
            if images[m].dtype != torch.uint8 and not images[m].is_floating_point():
                raise TypeError(
                    f"modality {m!r}: data must be uint8 images or a floating-point tensor, got "
                    f"{images[m].dtype}; convert integer codes to one-hot floats"
                )
            if index[m].shape != labels.shape:
                raise ValueError(
                    f"modality {m!r}: index has shape {tuple(index[m].shape)}, "
                    f"labels {tuple(labels.shape)}"
                )
        self.images = dict(images)
        self.index = {m: index[m].long() for m in self.modalities}
        self.labels = labels.long()
        self.noise_std = {m: float((noise_std or {}).get(m, 0.0)) for m in self.modalities}
        self.bank_labels = dict(bank_labels or {})
        self.labelled = labelled
        self.observed = None if observed is None else _checked_observed(observed, self)

    @classmethod
    def from_tensors(
        cls,
        tensors: Mapping[str, Tensor],
        labels: Tensor | None = None,
        noise_std: Mapping[str, float] | None = None,
        observed: Mapping[str, Tensor] | None = None,
    ) -> MultimodalData:
        """Paired data from one tensor per modality (row i of each is sample i): uint8 images
        [N, C, H, W] or [N, H, W], or floating-point tensors [N, ...]. `labels` ([N] integers)
        are what latent probes and coherence score against; without them every label is 0.
        `observed` maps modality names to bool [N] (True where the sample has that modality;
        modalities it does not name are complete): what a missing row holds is never read."""
        if not tensors:
            raise ValueError("give at least one modality")
        sizes = {m: int(t.shape[0]) for m, t in tensors.items()}
        if labels is not None:
            sizes["labels"] = int(labels.shape[0])
        if len(set(sizes.values())) != 1:
            raise ValueError(f"every modality and the labels need the same number of rows: {sizes}")
        n = next(iter(sizes.values()))
        labelled = labels is not None
        if labels is None:
            labels = torch.zeros(n, dtype=torch.long)
        elif labels.dim() != 1 or labels.is_floating_point():
            raise TypeError(
                f"labels must be a 1-D integer tensor, got {labels.dtype} of shape "
                f"{tuple(labels.shape)}"
            )
        banks = {
            m: t[:, None] if t.dtype == torch.uint8 and t.dim() == 3 else t
            for m, t in tensors.items()
        }
        for m, t in banks.items():
            _hint_float_images(m, t)
        index = {m: torch.arange(n, device=labels.device) for m in tensors}
        mask = None if observed is None else _observed_columns(observed, tuple(tensors), n)
        has = mask if mask is not None else torch.ones(n, len(banks), dtype=torch.bool)
        banks = {m: _blank_missing(m, t, has[:, k]) for k, (m, t) in enumerate(banks.items())}
        return cls(banks, index, labels, noise_std, labelled=labelled, observed=mask)

    @classmethod
    def from_dataset(
        cls,
        dataset: Dataset,
        modalities: Sequence[str] | None = None,
        *,
        label_key: str = "label",
        noise_std: Mapping[str, float] | None = None,
        max_bytes: int | None = None,
        num_workers: int = 0,
        progress: bool = True,
    ) -> MultimodalData:
        """Data from a torch `Dataset` whose items are dicts of modality tensors (MultiVae's
        {"data", "labels", "masks"} or a plain dict with the label under `label_key`), read
        once with a progress bar (`num_workers` as in a DataLoader) and held as tensors.
        `modalities` picks some (default: the first item's; samples with none of them are
        left out). Refuses data larger than `max_bytes` (default: the free memory) before
        reading them."""
        tensors, labels, observed = materialise(
            dataset, modalities, label_key, max_bytes, num_workers, progress
        )
        return cls.from_tensors(tensors, labels, noise_std, observed=observed)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def device(self) -> torch.device:
        return self.labels.device

    def is_image(self, modality: str) -> bool:
        """uint8 [C, H, W] samples (FID, sample grids)."""
        bank = self.images[modality]
        return bank.dtype == torch.uint8 and bank.dim() == 4

    def shape(self, modality: str) -> tuple[int, ...]:
        return tuple(self.images[modality].shape[1:])

    def labelled_images(self, modality: str) -> tuple[Tensor, Tensor]:
        """A modality's distinct samples and their labels: the bank and its labels where
        the data have them, else the samples row by row (those that have it)."""
        if modality in self.bank_labels:
            return self.images[modality], self.bank_labels[modality]
        if self.observed is not None:
            has = self.observed[:, self.modalities.index(modality)]
            return self.images[modality][self.index[modality][has]], self.labels[has]
        return self.images[modality][self.index[modality]], self.labels

    def to(self, device: torch.device | str) -> MultimodalData:
        """A copy on `device`; banks shared between modalities are moved once and stay shared."""
        moved: dict[int, Tensor] = {}

        def move(t: Tensor) -> Tensor:
            if id(t) not in moved:
                moved[id(t)] = t.to(device)
            return moved[id(t)]

        return MultimodalData(
            {m: move(v) for m, v in self.images.items()},
            {m: v.to(device) for m, v in self.index.items()},
            self.labels.to(device),
            self.noise_std,
            {m: move(v) for m, v in self.bank_labels.items()},
            self.labelled,
            None if self.observed is None else self.observed.to(device),
        )

    def subset(self, rows: Tensor) -> MultimodalData:
        """The samples at `rows` (shares the image banks)."""
        rows = rows.to(self.device)
        return MultimodalData(
            self.images,
            {m: v[rows] for m, v in self.index.items()},
            self.labels[rows],
            self.noise_std,
            self.bank_labels,
            self.labelled,
            None if self.observed is None else self.observed[rows],
        )

    def random_subset(self, n: int | None, seed: int = 0) -> MultimodalData:
        """At most `n` samples drawn by a seeded permutation, kept in their original order."""
        if n is None or n >= len(self):
            return self
        rows = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        return self.subset(rows.sort().values)

    def select(self, modalities: Sequence[str]) -> MultimodalData:
        """Only `modalities` (shares the image banks): batches then gather and noise no others.
        Incomplete data keep the samples that have at least one of them."""
        unknown = [m for m in modalities if m not in self.modalities]
        if unknown:
            raise KeyError(f"unknown modalities {unknown}: this data set has {self.modalities}")
        observed = None
        if self.observed is not None:
            observed = self.observed[:, [self.modalities.index(m) for m in modalities]]
            rows = observed.any(1)
            if not bool(rows.all()):  # samples with none of them
                return self.subset(rows.nonzero()[:, 0]).select(modalities)
        return MultimodalData(
            {m: self.images[m] for m in modalities},
            {m: self.index[m] for m in modalities},
            self.labels,
            {m: self.noise_std[m] for m in modalities},
            {m: v for m, v in self.bank_labels.items() if m in modalities},
            self.labelled,
            observed,
        )

    @property
    def complete(self) -> bool:
        """Whether every sample has every modality."""
        return self.observed is None

    def observed_mask(self) -> Tensor:
        """[N, M] bool: which modalities each sample has (all True for complete data)."""
        if self.observed is None:
            return torch.ones(len(self), len(self.modalities), dtype=torch.bool, device=self.device)
        return self.observed

    def complete_rows(self) -> MultimodalData:
        """The samples that have every modality (all of them for complete data): what
        evaluation scores, since its metrics compare every modality of a sample."""
        if self.observed is None:
            return self
        rows = self.observed.all(1).nonzero()[:, 0]
        if rows.numel() == 0:
            raise DataError(
                "no sample has every modality, and evaluation needs complete samples: give "
                "(some) complete rows in this split"
            )
        return self.subset(rows).with_observed(None)

    def with_observed(self, observed: Tensor | None) -> MultimodalData:
        """The same samples with `observed` ([N, M] bool, or None for complete) as their mask."""
        return MultimodalData(
            self.images,
            self.index,
            self.labels,
            self.noise_std,
            self.bank_labels,
            self.labelled,
            observed,
        )

    def drop_modalities(self, rate: float | Mapping[str, float], seed: int = 0) -> MultimodalData:
        """These samples with modalities made missing at random: each modality of each sample
        independently with probability `rate` (one for all, or per modality name), by a
        generator seeded with `seed`. A sample that would lose all its modalities keeps one,
        chosen uniformly among those it has, so the realised missing fraction is a little
        below `rate` (about 0.46 for 0.5 at M = 3; `missing_fraction` tells it)."""
        rates = rate if isinstance(rate, Mapping) else dict.fromkeys(self.modalities, rate)
        unknown = sorted(set(rates) - set(self.modalities))
        if unknown:
            raise KeyError(
                f"missing rates name unknown modalities {unknown}: the data have "
                f"{list(self.modalities)}"
            )
        bad = {m: r for m, r in rates.items() if not 0.0 <= float(r) < 1.0}
        if bad:
            raise ValueError(f"missing rates must lie in [0, 1), got {bad}")
        p = torch.tensor([float(rates.get(m, 0.0)) for m in self.modalities])
        generator = torch.Generator().manual_seed(seed)
        had = self.observed_mask().cpu()
        keep = had & (torch.rand(had.shape, generator=generator) >= p)
        # one of the modalities a sample had, uniformly: the largest of random keys among them
        keys = torch.rand(had.shape, generator=generator).masked_fill(~had, -1.0)
        one = torch.zeros_like(had).scatter_(1, keys.argmax(1, keepdim=True), True)
        keep |= one & ~keep.any(1, keepdim=True)
        return self.with_observed(None if bool(keep.all()) else keep.to(self.device))

    def missing_fraction(self) -> dict[str, float]:
        """Per modality the fraction of samples that lack it."""
        missing = (~self.observed_mask()).float().mean(0).tolist()
        return dict(zip(self.modalities, missing, strict=True))

    def nbytes(self) -> int:
        unique = {id(v): v for v in self.images.values()}.values()
        banks = sum(v.numel() * v.element_size() for v in unique)
        idx = sum(v.numel() * v.element_size() for v in self.index.values())
        return banks + idx + self.labels.numel() * self.labels.element_size()

    def batch(self, rows: Tensor, generator: torch.Generator | None = None) -> Batch:
        """Gather `rows` into a float `Batch`; noise comes from `generator` (on this device)."""
        rows = rows.to(self.device)
        if self.observed is None:
            mask = torch.ones(len(rows), len(self.modalities), dtype=torch.bool, device=self.device)
        else:
            mask = self.observed[rows]
        inputs, targets = {}, {}
        for k, m in enumerate(self.modalities):
            clean = encoder_input(self.images[m][self.index[m][rows]])
            keep = None
            if self.observed is not None:  # missing modalities hold zeros: none reaches a model
                keep = mask[:, k].view(-1, *[1] * (clean.dim() - 1))
                clean = clean * keep
            targets[m] = clean
            std = self.noise_std[m]
            if std > 0:
                noise = torch.randn(
                    clean.shape, generator=generator, device=clean.device, dtype=clean.dtype
                )
                inputs[m] = clean + std * (noise if keep is None else noise * keep)
            else:
                inputs[m] = clean
        return Batch(inputs, targets, self.labels[rows], mask, self.modalities)

    def batches(
        self,
        batch_size: int,
        shuffle: bool = True,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> Iterator[Batch]:
        """One pass over the data in batches; the permutation comes from `generator`."""
        n = len(self)
        if shuffle:
            order = torch.randperm(
                n, generator=generator, device=generator.device if generator else "cpu"
            )
            order = order.to(self.device)
        else:
            order = torch.arange(n, device=self.device)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            yield self.batch(order[start : start + batch_size], generator)

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        return len(self) // batch_size if drop_last else -(-len(self) // batch_size)


def _observed_columns(observed: Mapping[str, Tensor], names: tuple[str, ...], n: int) -> Tensor:
    """[N, M] bool from per-modality [N] masks (modalities not named are complete)."""
    unknown = sorted(set(observed) - set(names))
    if unknown:
        raise ValueError(
            f"observed names unknown modalities {unknown}; the data have {list(names)}"
        )
    columns = []
    for m in names:
        mask = observed.get(m)
        if mask is None:
            columns.append(torch.ones(n, dtype=torch.bool))
            continue
        mask = torch.as_tensor(mask)
        if mask.dtype != torch.bool or tuple(mask.shape) != (n,):
            raise ValueError(
                f"observed[{m!r}] must be a bool tensor of shape ({n},) (True where the sample "
                f"has {m!r}), got {mask.dtype} of shape {tuple(mask.shape)}"
            )
        columns.append(mask.cpu())
    return torch.stack(columns, 1)


def _checked_observed(observed: Tensor, data: MultimodalData) -> Tensor:
    """`observed` checked against the data: [N, M] bool, every sample with a modality."""
    expected = (len(data), len(data.modalities))
    if observed.dtype != torch.bool or tuple(observed.shape) != expected:
        raise ValueError(
            f"observed must be a bool tensor of shape (samples, modalities) = {expected}, got "
            f"{observed.dtype} of shape {tuple(observed.shape)}"
        )
    empty = (~observed.any(1)).nonzero()[:, 0]
    if empty.numel():
        raise ValueError(
            f"{empty.numel()} samples have no modality at all (first: row {int(empty[0])}); "
            "drop them: a sample needs at least one observed modality"
        )
    return observed.to(data.device)


def _blank_missing(name: str, tensor: Tensor, has: Tensor) -> Tensor:
    """`tensor` with zeros in the rows that lack modality `name` (they may hold NaN); a NaN
    in a row that has it is refused."""
    if not tensor.is_floating_point():
        return tensor
    nan = tensor.isnan().flatten(1).any(1)
    bad = (nan & has.to(nan.device)).nonzero()[:, 0]
    if bad.numel():
        raise ValueError(
            f"modality {name!r} has NaN in {bad.numel()} rows it is observed in (first: row "
            f"{int(bad[0])}); mark them missing in observed or fill them"
        )
    return tensor.nan_to_num(0.0) if bool(nan.any()) else tensor


def _hint_float_images(name: str, tensor: Tensor) -> None:
    """Warn when a floating-point modality looks like images in 0-255: it would be used as it
    is (no [0, 1] scaling, no FID or grids), which is rarely what was meant."""
    if not tensor.is_floating_point() or tensor.dim() not in (3, 4) or tensor.numel() == 0:
        return
    sample = tensor[:256]
    if sample.max() > 1.5 and sample.min() >= 0 and bool((sample == sample.round()).all()):
        warnings.warn(
            f"modality {name!r} is a float tensor of whole numbers in 0-{sample.max():.0f}: "
            "if these are images, give them as uint8 (e.g. x.round().to(torch.uint8)) so that "
            "they are scaled to [0, 1] and scored as images; float modalities are used as they "
            "are",
            UserWarning,
            stacklevel=3,
        )
