"""The model pool a router chooses from, and budget-capped generation with a length instruction.

"R2-Router: A New Paradigm for LLM Routing with Reasoning" (Xue et al., arXiv:2602.02823),
`shared/methods/inference.md` section 6.2: the output budget `b` is enforced "by the instruction
and by truncation". The released deployed instruction is a system prompt telling the model to
reply in at most b tokens and to give the answer directly without explanation; ours is
`LENGTH_INSTRUCTION` (our own wording of it). It goes in through the tokenizer's chat template
when it has one (a system message), else it is prepended as plain text; the hard cap is
`generate(..., max_new_tokens=b)`, greedy. `budget=None` is R2-Bench's "default" option: no
instruction, capped at `default_cap` tokens.

A pool maps names to `PoolModel`s (a model and tokenizer in memory, an HF folder, or a loader);
`load_pool_model` raises `PoolError` naming the model that fails to load. Both the benchmark
builder (`bench`) and `api.Router.route_and_generate` generate through `generate_capped`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from reasoning_jax.generate import generate
from reasoning_jax.tokenizers import Tokenizer

__all__ = [
  "LENGTH_INSTRUCTION",
  "CappedOutput",
  "PoolError",
  "PoolModel",
  "budget_cap",
  "budget_prompt",
  "check_pool",
  "generate_capped",
  "load_pool_model",
]

LENGTH_INSTRUCTION = (
  "Answer in at most {budget} tokens. Give the answer directly, without explanation."
)


class PoolError(ValueError):
  """A pool entry that cannot be used; the message names the model."""


@dataclasses.dataclass
class PoolModel:
  """One model of the pool.

  Give `model` and `tokenizer`, or `hf_dir` (a local Hugging Face folder, loaded on first use),
  or `load` (a callable returning `(model, tokenizer)`).

  Attributes:
    model / tokenizer: the `Transformer` and its tokenizer, once loaded.
    price: per-token `(input, output)` price, or None to use the measured seconds per token.
    hf_dir: a folder for `reasoning_jax.models.source.resolve_source` / `build_model`.
    load: a loader called with no arguments.
    eos_id: ids ending a completion (default: the folder's generation config, else the
      tokenizer's eos).
  """

  model: Any = None
  tokenizer: Tokenizer | None = None
  price: Any = None
  hf_dir: str = ""
  load: Callable[[], tuple[Any, Tokenizer]] | None = None
  eos_id: int | tuple[int, ...] | None = None


def _as_pool_model(name: str, entry: Any) -> PoolModel:
  if isinstance(entry, PoolModel):
    return entry
  if isinstance(entry, str):
    return PoolModel(hf_dir=entry)
  if callable(entry) and not hasattr(entry, "forward"):
    return PoolModel(load=entry)
  if isinstance(entry, tuple) and len(entry) in (2, 3):
    return PoolModel(entry[0], entry[1], entry[2] if len(entry) == 3 else None)
  raise PoolError(
    f"pool[{name!r}] must be a PoolModel, a (model, tokenizer[, price]) tuple, an HF folder or "
    f"a loader, got {type(entry).__name__}"
  )


def load_pool_model(name: str, entry: Any) -> PoolModel:
  """`entry` as a loaded `PoolModel` (model, tokenizer and eos set); `PoolError` names `name`
  when it fails to load or its tokenizer does not fit its embedding."""
  pm = _as_pool_model(name, entry)
  if pm.model is None:
    try:
      if pm.load is not None:
        pm.model, pm.tokenizer = pm.load()
      elif pm.hf_dir:
        from reasoning_jax.models.source import build_model, resolve_source

        src = resolve_source(hf_dir=pm.hf_dir, flag=f"pool[{name!r}]")
        pm.model, pm.tokenizer = build_model(src), src.tokenizer
        if pm.eos_id is None:
          pm.eos_id = src.eos_id
      else:
        raise ValueError("it has no model, hf_dir or load")
    except PoolError:
      raise
    except Exception as e:  # noqa: BLE001 - any loader failure becomes a named error
      where = f" from {pm.hf_dir!r}" if pm.hf_dir else ""
      raise PoolError(f"pool model {name!r} failed to load{where}: {e}") from e
  if pm.tokenizer is None:
    raise PoolError(f"pool model {name!r} has no tokenizer")
  vocab = getattr(getattr(pm.model, "config", None), "vocab_size", None)
  if vocab is not None and pm.tokenizer.vocab_size > vocab:
    raise PoolError(
      f"pool model {name!r}: its tokenizer has {pm.tokenizer.vocab_size} ids but the model's "
      f"embedding has vocab_size={vocab} rows"
    )
  if pm.eos_id is None:
    pm.eos_id = pm.tokenizer.eos_id
  return pm


def budget_prompt(
  tokenizer: Tokenizer,
  query: str,
  budget: int | None,
  instruction: str = LENGTH_INSTRUCTION,
  *,
  chat: bool = True,
) -> list[int]:
  """Token ids of `query` behind the length instruction for `budget` (None, or an empty
  `instruction`: no instruction, the budget is then enforced by truncation only).

  With `chat` and a tokenizer that has `apply_chat_template`, the instruction is the system
  message; otherwise it is prepended as text (`instruction\\n\\nquery\\n`) after the bos.
  """
  system = None if budget is None or not instruction else instruction.format(budget=budget)
  if chat and hasattr(tokenizer, "apply_chat_template"):
    messages = ([{"role": "system", "content": system}] if system else []) + [
      {"role": "user", "content": query}
    ]
    return list(tokenizer.encode(tokenizer.apply_chat_template(messages)))
  text = f"{system}\n\n{query}\n" if system else f"{query}\n"
  bos = [tokenizer.bos_id] if tokenizer.bos_id is not None else []
  return bos + list(tokenizer.encode(text))


def _pow2(n: int, floor: int = 16) -> int:
  b = floor
  while b < n:
    b *= 2
  return b


class CappedOutput(NamedTuple):
  """Per query: the completion text, its generated tokens (EOS included), its prompt tokens,
  and the batch's `prefill_s` / `decode_s` seconds summed over batches."""

  completions: list[str]
  output_lengths: np.ndarray
  input_lengths: np.ndarray
  prefill_s: float
  decode_s: float


def generate_capped(
  pm: PoolModel,
  queries: Sequence[str],
  budget: int | None,
  *,
  default_cap: int = 4000,
  instruction: str = LENGTH_INSTRUCTION,
  chat: bool = True,
  batch_size: int | None = None,
  warmup: bool = False,
  _seen: set | None = None,
) -> CappedOutput:
  """Greedy completions of `queries` by a loaded pool model, capped at `budget` new tokens
  (None: no instruction, `default_cap`) with the length instruction.

  Rows are padded to `batch_size` (default: all queries in one call) and prompts to a
  power-of-two width, so repeated calls reuse compiled shapes. With `warmup` each new shape is
  run once untimed first, so `prefill_s` / `decode_s` exclude compilation (`_seen` carries the
  shapes already compiled across calls).
  """
  cap = default_cap if budget is None else int(budget)
  if cap < 1:
    raise ValueError(f"budget must be >= 1 token, got {budget!r}")
  tok = pm.tokenizer
  prompts = [budget_prompt(tok, q, budget, instruction, chat=chat) for q in queries]
  n = len(prompts)
  bs = n if batch_size is None else int(batch_size)
  pad = tok.pad_id if tok.pad_id is not None else 0
  completions: list[str] = []
  out_len = np.zeros(n, np.int64)
  in_len = np.array([len(p) for p in prompts], np.int64)
  timings = {"prefill_s": 0.0, "decode_s": 0.0}
  seen = set() if _seen is None else _seen
  for start in range(0, n, max(bs, 1)):
    chunk = prompts[start : start + bs]
    width = _pow2(max(len(p) for p in chunk))
    ids = np.full((bs, width), pad, np.int32)
    lengths = np.ones(bs, np.int32)
    ids[:, 0] = chunk[0][0]
    for r, p in enumerate(chunk):
      ids[r, : len(p)] = p
      lengths[r] = len(p)
    kwargs = dict(max_new_tokens=cap, temperature=0.0, eos_id=pm.eos_id, pad_id=pad)
    shape = (id(pm.model), bs, width, cap)
    if warmup and shape not in seen:
      jax.block_until_ready(generate(pm.model, ids, lengths, **kwargs).tokens)
    seen.add(shape)
    out = generate(pm.model, ids, lengths, timings=timings, **kwargs)
    toks, lens = np.asarray(out.tokens), np.asarray(out.lengths)
    k = len(chunk)
    completions.extend(tok.decode_batch(toks[:k], lens[:k]))
    out_len[start : start + k] = lens[:k]
  return CappedOutput(completions, out_len, in_len, timings["prefill_s"], timings["decode_s"])


def budget_cap(budget: float | None) -> int | None:
  """A router's (possibly continuous) budget as a whole-token cap: floor, at least 1."""
  if budget is None:
    return None
  if not math.isfinite(budget):
    raise ValueError(f"budget must be finite, got {budget!r}")
  return max(1, int(math.floor(budget)))


def check_pool(pool: Mapping[str, Any]) -> None:
  """Raises `PoolError` unless `pool` is a non-empty mapping."""
  if not isinstance(pool, Mapping) or not pool:
    raise PoolError(f"pool must be a non-empty mapping of name -> model, got {pool!r}")
