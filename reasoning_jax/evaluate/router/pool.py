"""The router experiment's pool and queries: models of several sizes trained here, plus HF folders.

Trained here (the default): each entry of `config.pool.models` is an ordinary SFT config
(`configs/sft_arith.py`, byte tokenizer) trained once with `evaluate.trained_model.train_or_load`
in `<workdir>/pool/<name>` and loaded from its checkpoint afterwards (a checkpoint written under
another model or budget is refused). All members share one dataset (`<workdir>/pool/data`), so
the held-out questions of the table come from the test split none of them trained on. Local
Hugging Face folders in `config.pool.hf_dirs` join the pool as `PoolModel(hf_dir=...)` (loaded
on first use by `routing.build_bench`), named by their base names.
"""

from __future__ import annotations

import os
from typing import Any

import ml_collections
import numpy as np

from reasoning_jax.evaluate.trained_model import train_or_load
from reasoning_jax.routing import BenchQuery, PoolModel


def member_configs(config: ml_collections.ConfigDict) -> dict[str, ml_collections.ConfigDict]:
  """Name -> the SFT config of each trained member, in `config.pool.order`, with its workdir
  (`<workdir>/pool/<name>` unless set) and the shared data folder."""
  order = tuple(config.pool.order)
  missing = [n for n in order if n not in config.pool.models]
  if missing or not order:
    raise ValueError(
      f"config.pool.order {order} must name entries of config.pool.models "
      f"{sorted(config.pool.models)} (missing {missing})"
    )
  out = {}
  for name in order:
    sft = ml_collections.ConfigDict(config.pool.models[name].to_dict())
    sft.workdir = sft.workdir or os.path.join(config.workdir, "pool", name)
    sft.data_dir = sft.get("data_dir") or os.path.join(config.workdir, "pool", "data")
    out[name] = sft
  first = out[order[0]]
  for name, sft in out.items():
    for key in ("task", "task_config", "task_overrides", "prompt_template"):
      if sft.to_dict()[key] != first.to_dict()[key]:
        raise ValueError(
          f"config.pool.models.{name}.{key} differs from {order[0]}'s; the pool's members must "
          "share one task (the table's held-out questions come from its test split)"
        )
  return out


def family(example: dict[str, Any]) -> str:
  """The operator and the longest operand's digit count of an arithmetic example ("add2",
  "sub1", ...; addition with more than two addends gets "x<n>", e.g. "add3x3")."""
  op = _text(example["op"])
  name = {"+": "add", "-": "sub", "*": "mul"}.get(op, op)
  operands = [int(x) for x in example["operands"]]
  digits = max(len(str(abs(x))) for x in operands)
  extra = f"x{len(operands)}" if len(operands) > 2 else ""
  return f"{name}{digits}{extra}"


def _text(value: Any) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


def held_out_queries(config: ml_collections.ConfigDict) -> list[BenchQuery]:
  """`config.num_queries` questions of the task's test split (the first ones, formatted with
  the members' prompt template minus its trailing newline, which `budget_prompt` adds)."""
  from reasoning_jax.data import build_dataset

  sft = next(iter(member_configs(config).values()))
  builder = build_dataset(
    sft.task, sft.data_dir, config=sft.task_config or None, **dict(sft.task_overrides)
  )
  test = builder.as_data_source("test")
  n = int(config.num_queries)
  if n < 4 or n > len(test):
    raise ValueError(f"config.num_queries must be in [4, {len(test)}] (the test split), got {n}")
  template = sft.prompt_template
  if not template.endswith("\n"):
    raise ValueError(f"the pool's prompt_template must end in a newline, got {template!r}")
  out = []
  for i in range(n):
    ex = test[i]
    fields = {k: _text(v) for k, v in ex.items() if k in ("question", "answer", "solution")}
    out.append(BenchQuery(template[:-1].format(**fields), fields["answer"], family(ex), {}))
  return out


def build_pool(config: ml_collections.ConfigDict) -> tuple[dict[str, Any], dict[str, Any]]:
  """`(pool, info)`: name -> `PoolModel` (trained members first, smallest first, then the HF
  folders) and, per name, its origin, parameters and (trained) held-out SFT accuracy."""
  from reasoning_jax.models import count_params
  from reasoning_jax.train.sft_config import model_source

  pool: dict[str, Any] = {}
  info: dict[str, Any] = {}
  for name, sft in member_configs(config).items():
    model, trained = train_or_load(sft, f"pool model {name!r}")
    source = model_source(sft, prefix=f"config.pool.models.{name}")
    price = None  # "measured": seconds per token, from build_bench's timings.
    if config.get("price", "measured") == "flops":
      from reasoning_jax.evaluate.speculative.pair import per_token_flops

      flops = float(per_token_flops(model.config))
      price = (flops, flops)
    pool[name] = PoolModel(model, source.tokenizer, price, eos_id=source.eos_id)
    info[name] = {
      "source": "trained",
      "workdir": sft.workdir,
      "params": int(count_params(model)),
      "trained_now": bool(trained),
      "layers": int(model.config.num_layers),
      "hidden": int(model.config.hidden_size),
      "steps": int(sft.num_steps),
    }
  for path in config.pool.get("hf_dirs", ()) or ():
    name = os.path.basename(os.path.normpath(path))
    if name in pool:
      raise ValueError(f"config.pool.hf_dirs: {path!r} has the name {name!r} of another member")
    pool[name] = _hf_member(path, config.pool.get("tokenizer", ""))
    info[name] = {"source": "hf", "path": os.path.abspath(path)}
  return pool, info


def _hf_member(path: str, tokenizer: str) -> PoolModel:
  if tokenizer != "byte":
    return PoolModel(hf_dir=path)

  def load():
    from reasoning_jax.models.hf import from_hf
    from reasoning_jax.tokenizers import ByteTokenizer, pad_vocab

    model = from_hf(path)
    return model, pad_vocab(ByteTokenizer(), model.config.vocab_size)

  return PoolModel(load=load)


def family_counts(families: list[str]) -> dict[str, int]:
  names, counts = np.unique(np.asarray(families), return_counts=True)
  return {str(n): int(c) for n, c in zip(names, counts)}
