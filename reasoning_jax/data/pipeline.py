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

The stages live in `stages` (source, shuffle, repeat, host shard, workers), the per-example
transforms in `transforms`, batch assembly in `collate`, iterator checkpoints in
`iterator_checkpoint` and global arrays in `global_batch`; this module composes them.

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

from typing import Any, Callable, Optional, Sequence

import grain

from reasoning_jax.data.collate import PackedToBatch, batch_rows
from reasoning_jax.data.global_batch import to_global_batch
from reasoning_jax.data.prompts import PromptFormat
from reasoning_jax.data.iterator_checkpoint import iterator_state, restore_iterator
from reasoning_jax.data.stages import base_dataset, packing_available, with_workers
from reasoning_jax.data.stages import read_options as _read_options
from reasoning_jax.data.transforms import (
  ApplyIndexed,
  TokenizePrompt,
  TokenizeSFT,
  pad_value,
  resolve_bos,
)
from reasoning_jax.tokenizers.base import Tokenizer
from reasoning_jax.validation import check_positive_int

__all__ = [
  "make_sft_dataset",
  "make_prompt_dataset",
  "iterator_state",
  "restore_iterator",
  "to_global_batch",
  "packing_available",
]


def _check_common(tokenizer: Any, batch_size: Any, worker_count: Any) -> None:
  """Checks the arguments both pipelines take: `tokenizer`, `batch_size`, `worker_count`."""
  check_positive_int(batch_size, "batch_size")
  check_positive_int(worker_count, "worker_count", minimum=0)
  if not isinstance(tokenizer, Tokenizer):
    raise TypeError(f"tokenizer must be a reasoning_jax Tokenizer, got {type(tokenizer).__name__}")


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
  prompt_template: PromptFormat = "{question}\n",
  target_field: str = "solution",
  target_format: Optional[Callable[[str], str]] = None,
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
    prompt_template: `str.format` template over the example's fields, or a callable
      `fn(example) -> str` such as `prompts.ChatPrompt` (chat template).
    target_field: Field holding the SFT target.
    target_format: Optional `fn(target) -> str` (e.g. `prompts.FormatTarget("boxed")`).
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
  check_positive_int(seq_len, "seq_len")
  _check_common(tokenizer, batch_size, worker_count)
  if pack and not packing_available():
    raise ValueError(
      "pack=True needs grain.experimental.FirstFitPackIterDataset, which "
      f"grain {getattr(grain, '__version__', '?')} lacks"
    )
  if num_packing_bins is not None:
    check_positive_int(num_packing_bins, "num_packing_bins")
  ds = base_dataset(
    source,
    seed=seed,
    shuffle=shuffle,
    num_epochs=num_epochs,
    shard_index=shard_index,
    shard_count=shard_count,
  )
  ds = ds.map(
    TokenizeSFT(
      tokenizer,
      seq_len=seq_len,
      prompt_template=prompt_template,
      target_field=target_field,
      target_format=target_format,
      add_bos=resolve_bos(tokenizer, add_bos),
      truncate=truncate,
      pad=not pack,
    )
  )
  if pack:
    it_ds = grain.experimental.FirstFitPackIterDataset(
      ds.to_iter_dataset(_read_options(read_options, worker_count)),
      length_struct={"tokens": seq_len, "loss_mask": seq_len},
      num_packing_bins=num_packing_bins or batch_size,
      seed=seed,
      shuffle_bins=False,
      padding_struct={"tokens": pad_value(tokenizer), "loss_mask": 0},
    )
    it_ds = it_ds.map(PackedToBatch()).batch(batch_size, drop_remainder=drop_remainder)
  else:
    it_ds = ds.batch(batch_size, drop_remainder=drop_remainder).to_iter_dataset(
      _read_options(read_options, worker_count)
    )
  return with_workers(it_ds, worker_count)


def make_prompt_dataset(
  source: Any,
  tokenizer: Tokenizer,
  *,
  batch_size: int,
  max_prompt_len: int,
  seed: int = 0,
  shuffle: bool = False,
  num_epochs: Optional[int] = 1,
  prompt_template: PromptFormat = "{question}\n",
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
    prompt_template: `str.format` template over the example's fields, or a callable
      `fn(example) -> str` such as `prompts.ChatPrompt`.
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
  _check_common(tokenizer, batch_size, worker_count)
  check_positive_int(max_prompt_len, "max_prompt_len")
  if isinstance(fields, str):
    raise TypeError("fields must be a sequence of field names, not a single str")
  ds = base_dataset(
    source,
    seed=seed,
    shuffle=shuffle,
    num_epochs=num_epochs,
    shard_index=shard_index,
    shard_count=shard_count,
    with_index=True,
  )
  tokenize = TokenizePrompt(
    tokenizer,
    max_prompt_len=max_prompt_len,
    prompt_template=prompt_template,
    add_bos=resolve_bos(tokenizer, add_bos),
    truncate=truncate,
    fields=fields,
  )
  ds = ds.map(ApplyIndexed(tokenize))
  ds = ds.batch(batch_size, drop_remainder=drop_remainder, batch_fn=batch_rows)
  return with_workers(ds.to_iter_dataset(_read_options(read_options, worker_count)), worker_count)
