"""Saving and loading only the adapters (orbax), and exporting the merged model (`to_hf`).

  >>> save_adapters("/ckpt/adapters", model)        # the nnx.LoRAParam leaves only
  >>> load_adapters("/ckpt/adapters", model)        # into a model adapted the same way
  >>> export_merged(model, "/out/hf")               # W + alpha/r A B -> a transformers folder

Adapters are a plain pytree checkpoint (`orbax.checkpoint.v1.save_pytree`), tiny next to the
base, which is reloaded from its own folder (`from_hf`) or preset. Loading restores onto the
model's current adapter shardings and dtypes.
"""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp
from flax import nnx

from reasoning_jax.layers.lora import lora_kernels
from reasoning_jax.lora.adapters import merge_adapters
from reasoning_jax.models import to_hf


def _adapters(model: nnx.Module) -> dict:
  if not lora_kernels(model):
    raise ValueError("model has no LoRA adapters (call reasoning_jax.lora.apply_lora first)")
  return nnx.to_pure_dict(nnx.state(model, nnx.LoRAParam))


def save_adapters(directory: str | os.PathLike, model: nnx.Module) -> str:
  """Writes the model's adapter parameters (A and B of every kernel) to `directory`.

  `directory` must not exist yet (orbax refuses to overwrite). Returns it as a string.
  """
  directory = os.fspath(directory)
  ocp.v1.save(directory, _adapters(model))
  return directory


def load_adapters(directory: str | os.PathLike, model: nnx.Module) -> nnx.Module:
  """Loads adapters saved by `save_adapters` into `model` (same targets and rank), in place.

  Raises:
    FileNotFoundError: no checkpoint at `directory`.
    ValueError: the saved adapters do not match the model's (paths or shapes differ).
  """
  directory = os.fspath(directory)
  if not os.path.exists(directory):
    raise FileNotFoundError(f"no adapter checkpoint at {directory}")
  current = _adapters(model)
  abstract = jax.tree.map(
    lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
    current,
  )
  try:
    loaded = ocp.v1.load(directory, abstract)
  except Exception as e:  # orbax raises several types for a tree mismatch.
    raise ValueError(
      f"adapters in {directory} do not match the model's ({type(e).__name__}: {e})"
    ) from e
  nnx.update(model, loaded)
  return model


def export_merged(model: nnx.Module, directory: str | os.PathLike, **to_hf_kwargs) -> str:
  """Merges the adapters into a copy of `model` and writes it with `to_hf` (kwargs passed on).

  The merge is array math on the model's own devices and shardings, so on several processes
  (`jax.distributed`) every process calls this with its part of the same sharded model, as
  `to_hf` requires; process 0 writes the folder.

  DESIGN CHOICE: merges a clone so `model` keeps training; the clone shares the unadapted
  arrays, but each merged kernel is a new array next to its base (on the base's devices) until
  the export returns (call `merge_adapters(model)` then `to_hf` yourself to avoid it).
  """
  merged = merge_adapters(nnx.clone(model))
  return to_hf(merged, directory, **to_hf_kwargs)
