"""Training windows from the encoded corpus, on whichever device trains."""

from __future__ import annotations

import zlib

import numpy as np
import torch

from engine.config.train import TrainConfig
from engine.errors import ConfigError


def _device_dtype(ids: np.ndarray, vocab_size: int | None) -> tuple[torch.dtype, np.dtype]:
    """The narrowest integer dtype (torch, numpy) that holds every id of `ids` exactly."""
    top = vocab_size if vocab_size is not None else np.iinfo(ids.dtype).max + 1
    if top <= 1 << 8:
        return torch.uint8, np.dtype(np.uint8)
    if top <= 1 << 15:
        return torch.int16, np.dtype(np.int16)
    return torch.int32, np.dtype(np.int32)


def _copy_to_device(ids: np.ndarray, device: torch.device, vocab_size: int | None) -> torch.Tensor:
    """ids on `device` in a narrow dtype, copied in slices so host memory stays bounded."""
    dtype, np_dtype = _device_dtype(ids, vocab_size)
    out = torch.empty(len(ids), dtype=dtype, device=device)
    step = 64 << 20
    for start in range(0, len(ids), step):
        part = np.asarray(ids[start : start + step]).astype(np_dtype)  # a writable copy
        out[start : start + len(part)] = torch.from_numpy(part).to(device)
    return out


class BatchSource:
    """Training windows: random offsets, or parallel contiguous streams (stateful TBPTT).

    On an accelerator the ids live on the device, in the narrowest integer dtype
    that holds them (uint8 for most corpora), and on CUDA the offsets are drawn
    there too with a device generator: a step costs no host-to-device copy.
    Corpora too big for that, and every corpus on the CPU, stay where they are (a
    memory map of the encoding cache for big ones) and windows are gathered with
    numpy: copying a 1 GB corpus into an int32 tensor would cost 4 GB of RAM.

    Under DDP (`world_size` > 1) every rank draws the same global batch of
    world_size x batch_size rows from an identically seeded generator and keeps
    rows rank::world_size, so N ranks train exactly as one process would with
    the global batch, and the generator state in a checkpoint is every rank's.

    A labelled corpus (`segments`: (start, end, label) rows) is batched by
    `next_labelled` in two draws per row: a label, with probability proportional
    to its count of training windows ** `config.label_balance` (engine/data/
    label_balance.py: 1 natural, 0 uniform, 0.5 by default), then a window
    uniformly among those lying wholly inside that label's spans (never
    straddling two labels). Each comes with its condition id (label + 1),
    replaced by 0 ("no label") with probability `label_dropout` so that the
    model also learns to sample without one. Only random batching can do that (a
    stateful stream would run across labels).
    """

    DEVICE_LIMIT_BYTES = 2 << 30

    def __init__(
        self,
        ids: np.ndarray,
        config: TrainConfig,
        device: torch.device,
        seed: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        vocab_size: int | None = None,
        item_starts: np.ndarray | None = None,
        segments: np.ndarray | None = None,
        label_dropout: float = 0.0,
    ):
        self.config = config
        self.device = device
        self.length = len(ids)
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.rows = config.batch_size * world_size  # the global batch
        self.host_ids = ids
        self.device_ids: torch.Tensor | None = None
        if device.type != "cpu":
            narrow = _device_dtype(ids, vocab_size)[1]
            if self.length * narrow.itemsize <= self.DEVICE_LIMIT_BYTES:
                self.device_ids = _copy_to_device(ids, device, vocab_size)
        # Offsets are drawn where they are used: on the GPU when the ids are there.
        on_gpu = device.type == "cuda" and self.device_ids is not None
        self.index_device = device if on_gpu else torch.device("cpu")
        self.generator = torch.Generator(device=self.index_device).manual_seed(seed)
        self.position = 0
        self.stream_len = self.length // self.rows
        if config.batching == "stateful" and self.stream_len < config.seq_len + 1:
            raise ConfigError(
                f"stateful batching needs at least batch-size x (seq-len + 1) = "
                f"{self.rows * (config.seq_len + 1)} training chars, the corpus has "
                f"{self.length}: lower batch_size or seq_len, or use random batching"
            )
        self.window = torch.arange(config.seq_len + 1, device=self.index_device)
        # Line-per-item corpora: random windows start only at these positions (newlines).
        self.item_starts = None
        if item_starts is not None:
            if len(item_starts) == 0:
                raise ConfigError(
                    f"--items: no item starts a whole {config.seq_len}-char window "
                    "(too few lines, or seq-len longer than the corpus)"
                )
            self.item_starts = torch.from_numpy(np.asarray(item_starts, dtype=np.int64)).to(
                self.index_device
            )
        self.label_dropout = label_dropout
        if segments is not None:
            self._set_segments(np.asarray(segments, dtype=np.int64).reshape(-1, 3))

    def _set_segments(self, segments: np.ndarray) -> None:
        from engine.data.label_balance import label_shares

        if self.config.batching != "random":
            raise ConfigError(
                "conditional training needs random batching (windows stay in a label)"
            )
        seq = self.config.seq_len
        fits = np.maximum(segments[:, 1] - segments[:, 0] - seq, 0)
        if fits.sum() == 0:
            raise ConfigError(f"no label has a whole training window ({seq + 1} chars)")
        labels = segments[:, 2]
        per_label = np.bincount(labels, weights=fits, minlength=int(labels.max()) + 1)
        self.label_shares = label_shares(per_label, self.config.label_balance)
        # A segment's chance: its label's share, split among the label's segments by size.
        chance = self.label_shares[labels] * fits / np.maximum(per_label[labels], 1)
        on = self.index_device
        self.seg_starts = torch.as_tensor(segments[:, 0], device=on)
        self.seg_labels = torch.as_tensor(labels, device=on)
        self.seg_fits = torch.as_tensor(fits, device=on)
        self.seg_chance = torch.as_tensor(chance, dtype=torch.float64, device=on)

    def next_labelled(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(inputs, targets, condition ids): windows inside one label, label dropout applied."""
        on = self.index_device
        segment = torch.multinomial(
            self.seg_chance, self.rows, replacement=True, generator=self.generator
        )
        fits = self.seg_fits[segment]
        where = torch.rand(self.rows, generator=self.generator, device=on, dtype=torch.float64)
        offset = torch.minimum((where * fits).long(), fits - 1)
        starts = self.seg_starts[segment] + offset
        condition = self.seg_labels[segment] + 1
        dropped = torch.rand(self.rows, generator=self.generator, device=on) < self.label_dropout
        condition = torch.where(dropped, torch.zeros_like(condition), condition)
        chunk = self._gather(self._mine(starts)[:, None] + self.window)
        return chunk[:, :-1], chunk[:, 1:], self._mine(condition).to(self.device)

    def _gather(self, index: torch.Tensor) -> torch.Tensor:
        if self.device_ids is not None:
            return self.device_ids[index.to(self.device)].long()
        # Fancy indexing a memory map reads just the pages these windows touch.
        rows = torch.from_numpy(np.asarray(self.host_ids)[index.numpy()].astype(np.int64))
        if self.device.type == "cpu":
            return rows
        return rows.pin_memory().to(self.device, non_blocking=True)

    def _mine(self, rows: torch.Tensor) -> torch.Tensor:
        """This rank's share of the global batch."""
        return rows[self.rank :: self.world_size] if self.world_size > 1 else rows

    def next(self) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """(inputs, targets, reset): `reset` says carried state must start fresh."""
        seq = self.config.seq_len
        if self.config.batching == "random":
            high = self.length - seq if self.item_starts is None else len(self.item_starts)
            starts = torch.randint(
                0, high, (self.rows,), generator=self.generator, device=self.index_device
            )
            if self.item_starts is not None:
                starts = self.item_starts[starts]
            chunk = self._gather(self._mine(starts)[:, None] + self.window)
            return chunk[:, :-1], chunk[:, 1:], True
        reset = False
        if self.position == 0 or self.position + seq + 1 > self.stream_len:
            # Start a new pass at a random phase so window boundaries move between passes.
            # The phase must leave a whole window inside each stream.
            phases = min(seq, self.stream_len - seq)
            self.position = int(
                torch.randint(0, phases, (1,), generator=self.generator, device=self.index_device)
            )
            reset = True
        streams = self._mine(torch.arange(self.rows, device=self.index_device))
        chunk = self._gather((streams * self.stream_len + self.position)[:, None] + self.window)
        self.position += seq
        return chunk[:, :-1], chunk[:, 1:], reset

    def state_dict(self) -> dict:
        return {"position": self.position}

    def generator_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def restore(self, position: int, generator_state: torch.Tensor) -> None:
        self.position = position
        try:
            self.generator.set_state(generator_state)
        except (RuntimeError, ValueError):
            # Saved by a generator on another kind of device (a GPU run resumed on a CPU):
            # reseed from the saved state, the same way on every rank, not from the start.
            state = bytes(generator_state.to(torch.uint8).flatten().tolist())
            self.generator.manual_seed(self.seed ^ zlib.crc32(state))
