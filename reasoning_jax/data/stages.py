"""Grain stages shared by the pipelines: source -> shuffle -> repeat -> host shard, read
options, and worker processes (`mp_prefetch`).

The host slice defaults to `jax.process_index()::jax.process_count()`. `mp_prefetch` in
grain 0.2.18 reads an absl flag, so the first pipeline built with workers marks absl flags as
parsed when nothing has parsed them (programs run by `absl.app.run` are unaffected).
"""

from __future__ import annotations

from typing import Any, Optional

import grain
import numpy as np

from reasoning_jax.data.collate import CopyOut
from reasoning_jax.data.transforms import WithIndex
from reasoning_jax.validation import check_positive_int


def packing_available() -> bool:
  """Whether this grain version has `grain.experimental.FirstFitPackIterDataset`."""
  return hasattr(getattr(grain, "experimental", None), "FirstFitPackIterDataset")


def resolve_shard(shard_index: Optional[int], shard_count: Optional[int]) -> tuple[int, int]:
  """`(shard_index, shard_count)`, defaulting to this process's index and the process count."""
  if shard_index is None or shard_count is None:
    import jax  # Imported lazily: worker processes never need it.

    shard_index = jax.process_index() if shard_index is None else shard_index
    shard_count = jax.process_count() if shard_count is None else shard_count
  check_positive_int(shard_count, "shard_count")
  if not isinstance(shard_index, (int, np.integer)) or not 0 <= shard_index < shard_count:
    raise ValueError(
      f"shard_index must be an int in [0, shard_count={shard_count}), got {shard_index!r}"
    )
  return int(shard_index), int(shard_count)


def base_dataset(
  source: Any,
  *,
  seed: int,
  shuffle: bool,
  num_epochs: Optional[int],
  shard_index: Optional[int],
  shard_count: Optional[int],
  with_index: bool = False,
) -> grain.MapDataset:
  """`MapDataset.source -> [with index] -> shuffle(seed) -> repeat -> [shard_index::count]`."""
  if not hasattr(source, "__len__") or not hasattr(source, "__getitem__"):
    raise TypeError(f"source must support len() and indexing, got {type(source).__name__}")
  if len(source) == 0:
    raise ValueError("source is empty")
  if num_epochs is not None:
    check_positive_int(num_epochs, "num_epochs")
  shard_index, shard_count = resolve_shard(shard_index, shard_count)
  ds = grain.MapDataset.source(source)
  if with_index:
    ds = ds.map_with_index(WithIndex())
  if shuffle:
    ds = ds.shuffle(seed=seed)
  ds = ds.repeat(num_epochs)
  return ds[shard_index::shard_count]


def read_options(options: Optional[grain.ReadOptions], worker_count: int) -> grain.ReadOptions:
  """Per-process read threads: grain's default in-process, a few per worker process.

  Each worker process runs its own reader threads, so grain's default (16
  threads, a 500-element buffer) per worker mostly adds start-up and shutdown
  time; the worker processes provide the parallelism.
  """
  if options is not None:
    if not isinstance(options, grain.ReadOptions):
      raise TypeError(f"read_options must be a grain.ReadOptions, got {type(options).__name__}")
    return options
  if worker_count > 0:
    return grain.ReadOptions(num_threads=2, prefetch_buffer_size=32)
  return grain.ReadOptions()


def with_workers(ds: grain.IterDataset, worker_count: int) -> grain.IterDataset:
  """Runs `ds` in `worker_count` processes (`mp_prefetch`) and copies batches out; 0: as is."""
  if worker_count == 0:
    return ds
  _ensure_absl_flags_parsed()
  ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=int(worker_count)))
  return ds.map(CopyOut())


def _ensure_absl_flags_parsed() -> None:
  """grain's worker processes read an absl flag; mark flags parsed outside absl.app.

  Without this, `mp_prefetch` fails with `UnparsedFlagAccessError` in programs
  (and pytest) that never parse absl flags. Already-parsed flags are untouched.
  """
  from absl import flags

  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


class ConcatSource:
  """Random access over several sources back to back (picklable, for grain workers).

  The SFT warm start of a task with extra SFT-only splits (e.g. the rubric task's judge
  demonstrations) reads `ConcatSource([train, judge])`.
  """

  def __init__(self, sources: list[Any]):
    if not sources:
      raise ValueError("ConcatSource needs at least one source")
    self.sources = list(sources)
    self.offsets = np.cumsum([0] + [len(s) for s in self.sources])

  def __len__(self) -> int:
    return int(self.offsets[-1])

  def __getitem__(self, index: int) -> Any:
    index = int(index)
    if not 0 <= index < len(self):
      raise IndexError(f"index {index} out of range for {len(self)} records")
    k = int(np.searchsorted(self.offsets, index, side="right")) - 1
    return self.sources[k][index - int(self.offsets[k])]

  def __repr__(self) -> str:
    return f"ConcatSource({[len(s) for s in self.sources]})"
