"""Grain input pipelines for SFT and for RL/eval prompts, with checkpointable iterators.

`make_sft_dataset` turns a random-access source (e.g. `builder.as_data_source(
"train")`, or any sequence of example dicts) into batches of

  tokens      [B, L] int32   bos? + prompt + target + eos, right-padded with pad_id
  loss_mask   [B, L] int32   1 on target tokens (and the eos), 0 on bos/prompt/padding
  positions   [B, L] int32   position within its sequence (0 on padding)
  segment_ids [B, L] int32   1, 2, ... per packed sequence; 0 on padding

`loss_mask[b, t]` marks token `t` as a training target, so a next-token loss
uses `logits[:, :-1]` against `tokens[:, 1:]` weighted by `loss_mask[:, 1:]`.

The stages are `MapDataset.source -> shuffle(seed) -> repeat(num_epochs) ->
[shard_index::shard_count] -> map(tokenize) -> pad | pack -> batch ->
to_iter_dataset -> mp_prefetch` (the last only when `worker_count > 0`). The
host slice defaults to `jax.process_index()::jax.process_count()`.

Iterators are checkpointable: `state = iterator_state(it)` is a JSON-serialisable
dict and `restore_iterator(iter(ds), state)` continues with exactly the batch
that `it` would have produced next (with or without worker processes; restore
into a dataset built with the same arguments, `worker_count` included).

With `worker_count > 0`, worker `w` processes batches `w, w + n, ...` and the
main process interleaves them round-robin, so unpacked batches are identical to
the in-process ones. With packing each worker packs its own examples, so the
packed rows differ from the in-process ones (still deterministic and
resumable). Batches from workers are copied out of shared memory into ordinary
numpy arrays. Call `it.close()` to stop the workers early.

`mp_prefetch` in grain 0.2.18 reads an absl flag, so the first pipeline built
with workers marks absl flags as parsed when nothing has parsed them (programs
run by `absl.app.run` are unaffected).
"""

from __future__ import annotations

import base64
import json
from typing import Any, Mapping, Optional, Sequence

import grain
import numpy as np

from reasoning_jax.data.examples import decode_example
from reasoning_jax.tokenizers import Tokenizer

__all__ = [
  "make_sft_dataset",
  "make_prompt_dataset",
  "iterator_state",
  "restore_iterator",
  "to_global_batch",
  "packing_available",
]

_STATE_KEY = "reasoning_jax_iterator_state"
_STATE_VERSION = 1


def packing_available() -> bool:
  """Whether this grain version has `grain.experimental.FirstFitPackIterDataset`."""
  return hasattr(getattr(grain, "experimental", None), "FirstFitPackIterDataset")


# ------------------------------------------------------------------------------
# Per-example transforms (module-level classes so worker processes can unpickle them).
# ------------------------------------------------------------------------------


def _format_prompt(template: str, example: Mapping[str, Any]) -> str:
  try:
    return template.format_map(example)
  except KeyError as e:
    raise ValueError(
      f"prompt_template {template!r} uses field {e.args[0]!r}, which the "
      f"example does not have; fields: {sorted(example)}"
    ) from None


def _resolve_bos(tokenizer: Tokenizer, add_bos: Optional[bool]) -> bool:
  if add_bos is None:
    return tokenizer.bos_id is not None
  if add_bos and tokenizer.bos_id is None:
    raise ValueError("add_bos=True but the tokenizer has no bos token")
  return add_bos


class _TokenizeSFT:
  """Example dict -> `tokens`/`loss_mask` (+ `positions`/`segment_ids` when padding)."""

  def __init__(
    self,
    tokenizer: Tokenizer,
    *,
    seq_len: int,
    prompt_template: str,
    target_field: str,
    add_bos: bool,
    truncate: bool,
    pad: bool,
  ):
    self.tokenizer = tokenizer
    self.seq_len = seq_len
    self.prompt_template = prompt_template
    self.target_field = target_field
    self.add_bos = add_bos
    self.truncate = truncate
    self.pad = pad
    self.pad_value = tokenizer.pad_id if tokenizer.pad_id is not None else 0

  def __call__(self, example: Mapping[str, Any]) -> dict[str, np.ndarray]:
    ex = decode_example(example)
    if self.target_field not in ex:
      raise ValueError(
        f"target_field {self.target_field!r} is not a field of the example; fields: {sorted(ex)}"
      )
    target = ex[self.target_field]
    if not isinstance(target, str):
      target = str(target)
    tok = self.tokenizer
    prompt_ids = tok.encode(_format_prompt(self.prompt_template, ex), add_bos=self.add_bos)
    target_ids = tok.encode(target, add_eos=tok.eos_id is not None)
    n = len(prompt_ids) + len(target_ids)
    if n > self.seq_len and not self.truncate:
      raise ValueError(
        f"example encodes to {n} tokens, more than seq_len={self.seq_len}; "
        "raise seq_len or pass truncate=True"
      )
    ids = np.asarray(prompt_ids + target_ids, dtype=np.int32)[: self.seq_len]
    mask = np.zeros((n,), dtype=np.int32)
    mask[len(prompt_ids) :] = 1
    mask = mask[: self.seq_len]
    if not self.pad:
      return {"tokens": ids, "loss_mask": mask}
    m = len(ids)
    tokens = np.full((self.seq_len,), self.pad_value, dtype=np.int32)
    tokens[:m] = ids
    loss_mask = np.zeros((self.seq_len,), dtype=np.int32)
    loss_mask[:m] = mask
    positions = np.zeros((self.seq_len,), dtype=np.int32)
    positions[:m] = np.arange(m, dtype=np.int32)
    segment_ids = np.zeros((self.seq_len,), dtype=np.int32)
    segment_ids[:m] = 1
    return {
      "tokens": tokens,
      "loss_mask": loss_mask,
      "positions": positions,
      "segment_ids": segment_ids,
    }


class _PackedToBatch:
  """Renames FirstFitPack outputs to `tokens/loss_mask/positions/segment_ids`."""

  def __call__(self, packed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {
      "tokens": packed["tokens"].astype(np.int32),
      "loss_mask": packed["loss_mask"].astype(np.int32),
      "positions": packed["tokens_positions"].astype(np.int32),
      "segment_ids": packed["tokens_segment_ids"].astype(np.int32),
    }


class _TokenizePrompt:
  """(index, example) -> right-padded `prompts`, `prompt_lengths` and raw fields."""

  def __init__(
    self,
    tokenizer: Tokenizer,
    *,
    max_prompt_len: int,
    prompt_template: str,
    add_bos: bool,
    truncate: bool,
    fields: Optional[Sequence[str]],
  ):
    self.tokenizer = tokenizer
    self.max_prompt_len = max_prompt_len
    self.prompt_template = prompt_template
    self.add_bos = add_bos
    self.truncate = truncate
    self.fields = None if fields is None else tuple(fields)
    self.pad_value = tokenizer.pad_id if tokenizer.pad_id is not None else 0

  def __call__(self, index: int, example: Mapping[str, Any]) -> dict[str, Any]:
    ex = decode_example(example)
    ids = self.tokenizer.encode(_format_prompt(self.prompt_template, ex), add_bos=self.add_bos)
    if len(ids) > self.max_prompt_len:
      if not self.truncate:
        raise ValueError(
          f"prompt encodes to {len(ids)} tokens, more than max_prompt_len="
          f"{self.max_prompt_len}; raise it or pass truncate=True"
        )
      ids = ids[-self.max_prompt_len :]  # Keep the end, next to where generation starts.
    prompts = np.full((self.max_prompt_len,), self.pad_value, dtype=np.int32)
    prompts[: len(ids)] = ids
    out: dict[str, Any] = {
      "prompts": prompts,
      "prompt_lengths": np.asarray(len(ids), dtype=np.int32),
      "source_index": np.asarray(index, dtype=np.int64),
    }
    names = sorted(ex) if self.fields is None else self.fields
    for name in names:
      if name not in ex:
        raise ValueError(
          f"fields names {name!r}, which the example does not have; fields: {sorted(ex)}"
        )
      if name in out:
        raise ValueError(f"fields may not include the reserved name {name!r}")
      out[name] = ex[name]
    return out


def _batch_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
  """Stacks numeric arrays; other values (str, lists) become object arrays."""
  out = {}
  for key in rows[0]:
    values = [r[key] for r in rows]
    if isinstance(values[0], np.ndarray) and values[0].dtype != object:
      out[key] = np.stack(values)
    elif all(isinstance(v, (bool, int, float)) for v in values):
      out[key] = np.asarray(values)
    else:
      arr = np.empty((len(values),), dtype=object)
      for i, v in enumerate(values):
        arr[i] = v
      out[key] = arr
  return out


class _CopyOut:
  """Copies arrays out of grain's shared memory into ordinary numpy arrays."""

  def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
    return {k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v for k, v in batch.items()}


# ------------------------------------------------------------------------------
# Dataset constructors.
# ------------------------------------------------------------------------------


def _check_positive(name: str, value: Any) -> None:
  if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
    raise ValueError(f"{name} must be a positive int, got {value!r}")


def _resolve_shard(shard_index: Optional[int], shard_count: Optional[int]) -> tuple[int, int]:
  if shard_index is None or shard_count is None:
    import jax  # Imported lazily: worker processes never need it.

    shard_index = jax.process_index() if shard_index is None else shard_index
    shard_count = jax.process_count() if shard_count is None else shard_count
  _check_positive("shard_count", shard_count)
  if not isinstance(shard_index, (int, np.integer)) or not 0 <= shard_index < shard_count:
    raise ValueError(
      f"shard_index must be an int in [0, shard_count={shard_count}), got {shard_index!r}"
    )
  return int(shard_index), int(shard_count)


def _base_dataset(
  source: Any,
  *,
  seed: int,
  shuffle: bool,
  num_epochs: Optional[int],
  shard_index: Optional[int],
  shard_count: Optional[int],
  with_index: bool = False,
) -> grain.MapDataset:
  if not hasattr(source, "__len__") or not hasattr(source, "__getitem__"):
    raise TypeError(f"source must support len() and indexing, got {type(source).__name__}")
  if len(source) == 0:
    raise ValueError("source is empty")
  if num_epochs is not None:
    _check_positive("num_epochs", num_epochs)
  shard_index, shard_count = _resolve_shard(shard_index, shard_count)
  ds = grain.MapDataset.source(source)
  if with_index:
    ds = ds.map_with_index(_WithIndex())
  if shuffle:
    ds = ds.shuffle(seed=seed)
  ds = ds.repeat(num_epochs)
  return ds[shard_index::shard_count]


def _check_worker_count(worker_count: Any) -> None:
  if (
    not isinstance(worker_count, (int, np.integer))
    or isinstance(worker_count, bool)
    or worker_count < 0
  ):
    raise ValueError(f"worker_count must be a non-negative int, got {worker_count!r}")


def _read_options(
  read_options: Optional[grain.ReadOptions], worker_count: int
) -> grain.ReadOptions:
  """Per-process read threads: grain's default in-process, a few per worker process.

  Each worker process runs its own reader threads, so grain's default (16
  threads, a 500-element buffer) per worker mostly adds start-up and shutdown
  time; the worker processes provide the parallelism.
  """
  if read_options is not None:
    if not isinstance(read_options, grain.ReadOptions):
      raise TypeError(
        f"read_options must be a grain.ReadOptions, got {type(read_options).__name__}"
      )
    return read_options
  if worker_count > 0:
    return grain.ReadOptions(num_threads=2, prefetch_buffer_size=32)
  return grain.ReadOptions()


def _finish(ds: grain.IterDataset, worker_count: int) -> grain.IterDataset:
  if worker_count == 0:
    return ds
  _ensure_absl_flags_parsed()
  ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=int(worker_count)))
  return ds.map(_CopyOut())


def _ensure_absl_flags_parsed() -> None:
  """grain's worker processes read an absl flag; mark flags parsed outside absl.app.

  Without this, `mp_prefetch` fails with `UnparsedFlagAccessError` in programs
  (and pytest) that never parse absl flags. Already-parsed flags are untouched.
  """
  from absl import flags

  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def make_sft_dataset(
  source: Any,
  tokenizer: Tokenizer,
  *,
  seq_len: int,
  batch_size: int,
  seed: int,
  shuffle: bool = True,
  num_epochs: Optional[int] = None,
  pack: bool = False,
  prompt_template: str = "{question}\n",
  target_field: str = "solution",
  shard_index: Optional[int] = None,
  shard_count: Optional[int] = None,
  worker_count: int = 0,
  drop_remainder: bool = True,
  add_bos: Optional[bool] = None,
  truncate: bool = True,
  num_packing_bins: Optional[int] = None,
  read_options: Optional[grain.ReadOptions] = None,
) -> grain.IterDataset:
  """Builds the SFT pipeline: prompt + target token batches with a target-only loss mask.

  Each example becomes `[bos] + encode(prompt_template.format(**example)) +
  encode(example[target_field]) + [eos]`; `loss_mask` is 1 on the target and
  eos. Without packing each row holds one example padded to `seq_len`
  (`segment_ids` 1 on it, 0 on padding). With packing, first-fit packing fills
  `num_packing_bins` rows (default `batch_size`) with several examples each;
  `segment_ids` count 1, 2, ... per row and `positions` restart at 0 for each
  example.

  Args:
    source: Random-access source of example dicts (`len` and `[i]`), e.g.
      `builder.as_data_source("train")`; text may be `bytes` or `str`.
    tokenizer: A `reasoning_jax.tokenizers.Tokenizer`.
    seq_len: Row length L.
    batch_size: Rows per batch on this host.
    seed: Seed of the shuffle (reshuffled each epoch) and of packing.
    shuffle: Shuffle the examples.
    num_epochs: Passes over the data; None repeats forever.
    pack: Pack several examples per row (`grain.experimental.FirstFitPackIterDataset`).
    prompt_template: `str.format` template over the example's fields.
    target_field: Field holding the SFT target.
    shard_index: This host's shard; defaults to `jax.process_index()`.
    shard_count: Number of shards; defaults to `jax.process_count()`.
    worker_count: Grain worker processes (`mp_prefetch`); 0 runs in-process.
    drop_remainder: Drop a final partial batch (finite `num_epochs` only).
    add_bos: Prepend bos; None means "if the tokenizer has one".
    truncate: Cut examples longer than `seq_len` (which may drop the eos)
      instead of raising.
    num_packing_bins: Rows filled per packing round (default `batch_size`);
      more bins pack tighter but mix examples from further apart.
    read_options: Threads and buffer of `to_iter_dataset`; default grain's
      (16 threads, 500 elements) in-process and 2 threads / 32 elements per
      worker process when `worker_count > 0`.

  Returns:
    A `grain.IterDataset` of dicts of numpy arrays; `iter()` it for batches.

  Raises:
    ValueError: On invalid arguments (the message names the argument), or if
      packing is requested but this grain version lacks it.
  """
  _check_positive("seq_len", seq_len)
  _check_positive("batch_size", batch_size)
  _check_worker_count(worker_count)
  if not isinstance(tokenizer, Tokenizer):
    raise TypeError(f"tokenizer must be a reasoning_jax Tokenizer, got {type(tokenizer).__name__}")
  if pack and not packing_available():
    raise ValueError(
      "pack=True needs grain.experimental.FirstFitPackIterDataset, which "
      f"grain {getattr(grain, '__version__', '?')} lacks"
    )
  if num_packing_bins is not None:
    _check_positive("num_packing_bins", num_packing_bins)
  ds = _base_dataset(
    source,
    seed=seed,
    shuffle=shuffle,
    num_epochs=num_epochs,
    shard_index=shard_index,
    shard_count=shard_count,
  )
  ds = ds.map(
    _TokenizeSFT(
      tokenizer,
      seq_len=seq_len,
      prompt_template=prompt_template,
      target_field=target_field,
      add_bos=_resolve_bos(tokenizer, add_bos),
      truncate=truncate,
      pad=not pack,
    )
  )
  if pack:
    pad_value = tokenizer.pad_id if tokenizer.pad_id is not None else 0
    it_ds = grain.experimental.FirstFitPackIterDataset(
      ds.to_iter_dataset(_read_options(read_options, worker_count)),
      length_struct={"tokens": seq_len, "loss_mask": seq_len},
      num_packing_bins=num_packing_bins or batch_size,
      seed=seed,
      shuffle_bins=False,
      padding_struct={"tokens": pad_value, "loss_mask": 0},
    )
    it_ds = it_ds.map(_PackedToBatch()).batch(batch_size, drop_remainder=drop_remainder)
  else:
    it_ds = ds.batch(batch_size, drop_remainder=drop_remainder).to_iter_dataset(
      _read_options(read_options, worker_count)
    )
  return _finish(it_ds, worker_count)


def make_prompt_dataset(
  source: Any,
  tokenizer: Tokenizer,
  *,
  batch_size: int,
  max_prompt_len: int,
  seed: int = 0,
  shuffle: bool = False,
  num_epochs: Optional[int] = 1,
  prompt_template: str = "{question}\n",
  fields: Optional[Sequence[str]] = None,
  shard_index: Optional[int] = None,
  shard_count: Optional[int] = None,
  worker_count: int = 0,
  drop_remainder: bool = False,
  add_bos: Optional[bool] = None,
  truncate: bool = False,
  read_options: Optional[grain.ReadOptions] = None,
) -> grain.IterDataset:
  """Builds a prompt pipeline for RL rollouts and evaluation.

  Batches are dicts with `prompts` (`[B, max_prompt_len]` int32, right-padded
  with `pad_id`), `prompt_lengths` (`[B]` int32), `source_index` (`[B]` int64,
  the example's index in `source`) and one entry per raw field (`answer`,
  `question`, `target`, ...): numeric scalars as numpy arrays, str and list
  values as numpy object arrays. Defaults suit evaluation (one ordered pass,
  final partial batch kept); for RL pass `shuffle=True, num_epochs=None`.

  Args:
    source: Random-access source of example dicts.
    tokenizer: A `reasoning_jax.tokenizers.Tokenizer`.
    batch_size: Rows per batch on this host.
    max_prompt_len: Width of `prompts`.
    seed: Shuffle seed.
    shuffle: Shuffle the examples.
    num_epochs: Passes over the data; None repeats forever.
    prompt_template: `str.format` template over the example's fields.
    fields: Raw fields to carry along; None carries all of them.
    shard_index: This host's shard; defaults to `jax.process_index()`.
    shard_count: Number of shards; defaults to `jax.process_count()`.
    worker_count: Grain worker processes (`mp_prefetch`); 0 runs in-process.
    drop_remainder: Drop a final partial batch.
    add_bos: Prepend bos; None means "if the tokenizer has one".
    truncate: Keep the last `max_prompt_len` tokens of longer prompts instead
      of raising.
    read_options: See `make_sft_dataset`.

  Returns:
    A `grain.IterDataset` of batch dicts.
  """
  _check_positive("batch_size", batch_size)
  _check_positive("max_prompt_len", max_prompt_len)
  _check_worker_count(worker_count)
  if not isinstance(tokenizer, Tokenizer):
    raise TypeError(f"tokenizer must be a reasoning_jax Tokenizer, got {type(tokenizer).__name__}")
  if isinstance(fields, str):
    raise TypeError("fields must be a sequence of field names, not a single str")
  ds = _base_dataset(
    source,
    seed=seed,
    shuffle=shuffle,
    num_epochs=num_epochs,
    shard_index=shard_index,
    shard_count=shard_count,
    with_index=True,
  )
  tokenize = _TokenizePrompt(
    tokenizer,
    max_prompt_len=max_prompt_len,
    prompt_template=prompt_template,
    add_bos=_resolve_bos(tokenizer, add_bos),
    truncate=truncate,
    fields=fields,
  )
  ds = ds.map(_ApplyIndexed(tokenize))
  ds = ds.batch(batch_size, drop_remainder=drop_remainder, batch_fn=_batch_rows)
  return _finish(ds.to_iter_dataset(_read_options(read_options, worker_count)), worker_count)


class _WithIndex:
  """`(index, example)` -> `(index, example)`: remembers the source index."""

  def __call__(self, index, example):
    return index, example


class _ApplyIndexed:
  """`(index, example)` -> `fn(index, example)`."""

  def __init__(self, fn):
    self.fn = fn

  def __call__(self, pair):
    return self.fn(*pair)


# ------------------------------------------------------------------------------
# Checkpointing.
# ------------------------------------------------------------------------------


def _encode_state(x: Any) -> Any:
  """Makes a grain state JSON-safe, reversibly (see `_decode_state`)."""
  if x is None or isinstance(x, (bool, str)):
    return x
  if isinstance(x, (int, float)):
    return x
  if isinstance(x, np.generic):
    return _encode_state(x.item())
  if isinstance(x, bytes):
    return {"__bytes__": base64.b64encode(x).decode("ascii")}
  if isinstance(x, np.ndarray):
    return {"__ndarray__": x.tolist(), "dtype": str(x.dtype)}
  if isinstance(x, tuple):
    return {"__tuple__": [_encode_state(v) for v in x]}
  if isinstance(x, list):
    return [_encode_state(v) for v in x]
  if isinstance(x, Mapping):
    if all(isinstance(k, str) and not k.startswith("__") for k in x):
      return {k: _encode_state(v) for k, v in x.items()}
    return {"__items__": [[_encode_state(k), _encode_state(v)] for k, v in x.items()]}
  raise TypeError(f"cannot serialise iterator state component of type {type(x).__name__}")


def _decode_state(x: Any) -> Any:
  if isinstance(x, list):
    return [_decode_state(v) for v in x]
  if isinstance(x, dict):
    if "__bytes__" in x:
      return base64.b64decode(x["__bytes__"])
    if "__ndarray__" in x:
      return np.asarray(x["__ndarray__"], dtype=x["dtype"])
    if "__tuple__" in x:
      return tuple(_decode_state(v) for v in x["__tuple__"])
    if "__items__" in x:
      return {_decode_state(k): _decode_state(v) for k, v in x["__items__"]}
    return {k: _decode_state(v) for k, v in x.items()}
  return x


def iterator_state(it: Any) -> dict[str, Any]:
  """Returns the iterator's position as a JSON-serialisable dict.

  Args:
    it: An iterator from `iter(make_sft_dataset(...))` or any grain iterator.

  Returns:
    A dict that `json.dumps` accepts; pass it (or its JSON round trip) to
    `restore_iterator`.

  Raises:
    TypeError: If `it` has no `get_state`.
  """
  if not hasattr(it, "get_state"):
    raise TypeError(f"it must be a grain iterator with get_state(), got {type(it).__name__}")
  state = {_STATE_KEY: _STATE_VERSION, "grain": _encode_state(it.get_state())}
  json.dumps(state)  # Guarantees the promise in the docstring.
  return state


def restore_iterator(it: Any, state: Mapping[str, Any]) -> Any:
  """Moves a fresh iterator of the same dataset to a saved position.

  Args:
    it: An iterator of a dataset built with the same arguments (e.g. `iter(ds)`).
    state: A dict from `iterator_state` (possibly after a JSON round trip).

  Returns:
    `it`, whose next batch is the one the saved iterator would have produced next.

  Raises:
    TypeError: If `it` has no `set_state`.
    ValueError: If `state` did not come from `iterator_state`.
  """
  if not hasattr(it, "set_state"):
    raise TypeError(f"it must be a grain iterator with set_state(), got {type(it).__name__}")
  if not isinstance(state, Mapping) or state.get(_STATE_KEY) != _STATE_VERSION:
    raise ValueError("state must be a dict returned by iterator_state()")
  it.set_state(_decode_state(state["grain"]))
  return it


# ------------------------------------------------------------------------------
# Global arrays.
# ------------------------------------------------------------------------------


def to_global_batch(local_batch: Mapping[str, Any], mesh: Any, spec: Any) -> dict[str, Any]:
  """Assembles each host's batch into global `jax.Array`s sharded over `mesh`.

  Each numeric array goes through `jax.make_array_from_process_local_data(
  NamedSharding(mesh, spec), local_array)`, so the global batch dimension is
  the concatenation of all hosts' local batches. Non-numeric entries (object or
  string arrays such as answers) stay host-local numpy arrays.

  Args:
    local_batch: Dict of this host's arrays (leading dim = local batch).
    mesh: A `jax.sharding.Mesh`.
    spec: A `PartitionSpec` for every array, or a dict of them by key. A spec
      longer than an array's rank is cut to the rank, so `P("data", None)`
      serves both `[B, L]` and `[B]` arrays.

  Returns:
    A dict with the same keys.

  Raises:
    KeyError: If `spec` is a dict that lacks a numeric key of `local_batch`.
  """
  import jax
  from jax.sharding import NamedSharding, PartitionSpec

  if not isinstance(local_batch, Mapping):
    raise TypeError(f"local_batch must be a dict of arrays, got {type(local_batch).__name__}")
  out: dict[str, Any] = {}
  for key, value in local_batch.items():
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind in "USV":
      out[key] = value
      continue
    if isinstance(spec, Mapping):
      if key not in spec:
        raise KeyError(f"spec has no PartitionSpec for {key!r}; keys: {sorted(spec)}")
      s = spec[key]
    else:
      s = spec
    if not isinstance(s, PartitionSpec):
      raise TypeError(f"spec for {key!r} must be a PartitionSpec, got {type(s).__name__}")
    if len(s) > arr.ndim:
      s = PartitionSpec(*tuple(s)[: arr.ndim])
    out[key] = jax.make_array_from_process_local_data(NamedSharding(mesh, s), arr)
  return out
