"""Saving and loading a quantized model (orbax), optionally onto a mesh.

  >>> save_quantized("/ckpt/q2", model)                       # after quantize_model
  >>> model = load_quantized("/ckpt/q2", Transformer(config, rngs=nnx.Rngs(0)))
  >>> model = load_quantized("/ckpt/q2", template, mesh=mesh, rules=rules_for("qwen3"))

A folder holds `quantization.json` (format version, every quantized kernel's path, kernel
shape, contracted axes, dtype, kind, bits, group size, method and array shapes/dtypes) and
`state/`, the orbax pytree of the whole model state (quantized arrays and the float
parameters that stay). Loading takes a float model of the same architecture as a template
(a preset, `from_hf`, or abstract via `nnx.eval_shape`), swaps in `QuantizedKernel`s of the
recorded layout, and restores every array; any difference between the folder and the
template is a `ValueError` that names it (nothing is loaded half-way).
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from flax import nnx
from jax.sharding import PartitionSpec as P

from reasoning_jax.layers.quantized import QuantizedKernel, quantized_kernels
from reasoning_jax.ops.quant import QuantizedWeight
from reasoning_jax.quant.model import set_at
from reasoning_jax.sharding import param_shardings

FORMAT_VERSION = 1
_ARRAYS = ("planes", "coeffs", "scales", "zeros", "perm")


def _entry(path: str, k: QuantizedKernel) -> dict[str, Any]:
  arrays = {
    n: {"shape": list(getattr(k, n)[...].shape), "dtype": jnp.dtype(getattr(k, n)[...].dtype).name}
    for n in _ARRAYS
    if getattr(k, n) is not None
  }
  return dict(
    path=path,
    kernel_shape=list(k.kernel_shape),
    in_dims=k.in_dims,
    dtype=k.dtype,
    kind=k.kind,
    bits=k.bits,
    group_size=k.group_size,
    method=k.method,
    shape=list(k.shape_2d),
    arrays=arrays,
  )


def save_quantized(directory: str | os.PathLike, model: nnx.Module, **metadata) -> str:
  """Writes `model` (quantized by `quantize_model`) to `directory` (must not exist).

  `metadata` (JSON-serialisable: the calibration settings, the source model) is stored in
  `quantization.json` beside the layout. Returns the directory.
  """
  directory = os.fspath(directory)
  kernels = quantized_kernels(model)
  if not kernels:
    raise ValueError("save_quantized: model has no quantized kernels (run quantize_model first)")
  if os.path.exists(directory):
    raise FileExistsError(f"{directory} exists; save_quantized writes a new folder")
  os.makedirs(directory)
  layout = dict(
    format_version=FORMAT_VERSION,
    kernels=[_entry(p, k) for p, k in kernels],
    metadata=metadata,
  )
  ocp.v1.save(os.path.join(directory, "state"), nnx.to_pure_dict(nnx.state(model)))
  with open(os.path.join(directory, "quantization.json"), "w") as f:
    json.dump(layout, f, indent=1)
  return directory


def read_layout(directory: str | os.PathLike) -> dict[str, Any]:
  """The folder's `quantization.json` (FileNotFoundError / ValueError when absent or bad)."""
  path = os.path.join(os.fspath(directory), "quantization.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"no quantized checkpoint at {directory} (missing quantization.json)")
  try:
    with open(path) as f:
      layout = json.load(f)
  except json.JSONDecodeError as e:
    raise ValueError(f"{path} is not valid JSON: {e}") from e
  if layout.get("format_version") != FORMAT_VERSION:
    raise ValueError(
      f"{path}: format_version {layout.get('format_version')!r}, this code reads {FORMAT_VERSION}"
    )
  return layout


def _placeholder(entry: dict[str, Any]) -> QuantizedWeight:
  arrays = {
    n: jnp.zeros(tuple(spec["shape"]), spec["dtype"]) for n, spec in entry["arrays"].items()
  }
  return QuantizedWeight(
    **arrays,
    kind=entry["kind"],
    bits=entry["bits"],
    group_size=entry["group_size"],
    shape=tuple(entry["shape"]),
    method=entry["method"],
  )


def _swap_in(model: nnx.Module, entries: list[dict[str, Any]], implementation: str) -> None:
  nodes = {".".join(map(str, p)): n for p, n in nnx.iter_graph(model)}
  for entry in entries:
    path = entry["path"]
    node = nodes.get(path)
    if node is None:
      raise ValueError(f"quantized checkpoint does not match the model: no kernel at {path}")
    if not isinstance(node, nnx.Param):
      raise ValueError(f"quantized checkpoint: {path} is a {type(node).__name__}, not a kernel")
    if list(node[...].shape) != entry["kernel_shape"]:
      raise ValueError(
        f"quantized checkpoint does not match the model: {path} has shape "
        f"{tuple(node[...].shape)} in the model, {tuple(entry['kernel_shape'])} in the checkpoint"
      )
    kernel = QuantizedKernel(
      _placeholder(entry),
      kernel_shape=tuple(entry["kernel_shape"]),
      in_dims=entry["in_dims"],
      dtype=entry["dtype"],
      implementation=implementation,
    )
    set_at(model, path, kernel)


def quant_rules(rules) -> tuple:
  """Partition rules for a quantized model from the float model's `rules`.

  A kernel's packed arrays are sharded over its output axis (the first output axis of the
  kernel's rule, e.g. "tensor" for q/k/v/gate/up, "fsdp" for o/down): rows are independent,
  so each device dequantizes and multiplies its own rows. `perm` is replicated.
  """
  out = []
  for pattern, spec in rules:
    spec = tuple(spec)
    in_dims = 2 if pattern.endswith("o_proj") else 1
    out_axis = spec[in_dims] if len(spec) > in_dims else None
    out.append((pattern + r"\.(planes|coeffs)", P(None, None, out_axis)))
    out.append((pattern + r"\.(scales|zeros)", P(None, out_axis)))
    out.append((pattern + r"\.perm", P()))
  return tuple(out) + tuple(rules)


def load_quantized(
  directory: str | os.PathLike,
  model: nnx.Module,
  *,
  mesh=None,
  rules=None,
  implementation: str = "xla",
) -> nnx.Module:
  """Loads a folder written by `save_quantized` into `model` (a float template), in place.

  With `mesh` and `rules` (the float model's partition rules), every array is restored
  directly into its sharding (`quant_rules(rules)`); otherwise onto the default device.

  Raises:
    FileNotFoundError: no checkpoint at `directory`.
    ValueError: the checkpoint's kernels or arrays do not match the template (named).
  """
  directory = os.fspath(directory)
  layout = read_layout(directory)
  if quantized_kernels(model):
    raise ValueError("load_quantized: the template model is already quantized")
  _swap_in(model, layout["kernels"], implementation)
  state = nnx.to_pure_dict(nnx.state(model))
  if mesh is not None:
    if rules is None:
      raise ValueError("load_quantized: pass the float model's partition rules with mesh=")
    shardings = param_shardings(state, quant_rules(rules), mesh)
  else:
    sharding = jax.sharding.make_single_device_sharding(jax.devices()[0])
    shardings = jax.tree.map(lambda _: sharding, state)
  abstract = jax.tree.map(
    lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings
  )
  try:
    loaded = ocp.v1.load(os.path.join(directory, "state"), abstract)
  except Exception as e:  # orbax raises several types for a tree mismatch.
    raise ValueError(
      f"quantized checkpoint {directory} does not match the model ({type(e).__name__}: {e})"
    ) from e
  nnx.update(model, loaded)
  return model
