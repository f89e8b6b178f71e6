"""Named registries: the single source of truth for what a config may name.

Every swappable component (token mixers, feed-forward blocks, attention backends,
and later losses, advantage estimators, KL estimators, aggregation modes and
rewards) is registered here by name. Config validation is derived from the
registry contents, so the list of valid names can never drift from the code.

Kernel plugins. Packages above `reasoning_jax.ops` (the Pallas kernels in `pallas_kernels/`,
and later the dequant-matmul and sparse-decode kernels) provide backends that an op
dispatches on by name. The op never imports the kernel package: each registry below lists,
as data, the module that provides each such name (`plugins=`), and the first lookup of a
name (`get`, `validate`, `in`, `names`) imports that module, which registers itself at
import. So the import graph stays one-way (kernels -> ops -> registry) and an op works
without the kernel package installed (its XLA path).

Example:
  >>> from reasoning_jax import registry
  >>> @registry.MIXERS.register("my_mixer")
  ... class MyMixer: ...
  >>> registry.MIXERS.get("my_mixer")
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Mapping
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")

_IMPORT_PATH = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")


class Registry(Generic[T]):
  """A thread-safe mapping from names to components of one category."""

  def __init__(
    self,
    category: str,
    *,
    plugins: Mapping[str, str] | None = None,
    import_paths: bool = False,
  ):
    """A registry of one category.

    Args:
      category: the component kind, used in messages ("mixer", "loss", ...).
      plugins: name -> module that registers that name when imported (see the module
        docstring). Loaded on the first lookup of any name; a plugin whose import fails is
        left out, and asking for it by name raises with the import error.
      import_paths: also accept a user's own component by import path: a name
        `"package.module:attribute"` that is not registered is imported on its first
        lookup and registered under that name (a callable attribute only), so a config
        can name code outside this package, e.g. `--config.reward=my_rewards:strict_boxed`.
        Only the module the name gives is imported; nothing is evaluated.
    """
    self.category = category
    self._entries: dict[str, T] = {}
    self._lock = threading.RLock()
    self._plugins: dict[str, str] = dict(plugins or {})
    self._plugin_errors: dict[str, str] = {}
    self._import_paths = import_paths

  def _load_import_path(self, name: Any) -> None:
    """Registers the callable that the import path `name` points to (see `import_paths`)."""
    if not self._import_paths or not isinstance(name, str) or name in self._entries:
      return
    module_name, sep, attribute = name.partition(":")
    if not sep:
      return
    if not _IMPORT_PATH.fullmatch(name):
      self._plugin_errors[name] = "an import path is 'package.module:attribute'"
      return
    try:
      obj: Any = importlib.import_module(module_name)
    except ImportError as e:
      self._plugin_errors[name] = f"module {module_name!r} failed to import: {e}"
      return
    for part in attribute.split("."):
      if not hasattr(obj, part):
        self._plugin_errors[name] = f"module {module_name!r} has no attribute {attribute!r}"
        return
      obj = getattr(obj, part)
    if not callable(obj):
      self._plugin_errors[name] = f"{name} is not callable (a {type(obj).__name__})"
      return
    self.register(name, override=True)(obj)
    self._plugin_errors.pop(name, None)

  def _load_plugins(self) -> None:
    """Imports the plugin modules not yet imported (each registers its own names)."""
    while self._plugins:
      with self._lock:
        if not self._plugins:
          return
        name, module = next(iter(self._plugins.items()))
        del self._plugins[name]
      if name in self._entries:
        continue
      try:
        importlib.import_module(module)
      except ImportError as e:
        self._plugin_errors[name] = f"{module} failed to import: {e}"
        continue
      if name not in self._entries:
        self._plugin_errors[name] = f"{module} was imported but did not register {name!r}"

  def register(self, name: str, *, override: bool = False) -> Callable[[T], T]:
    """Decorator registering `obj` under `name`; re-registration needs `override`."""
    if not isinstance(name, str) or not name:
      raise ValueError(f"{self.category} registry: name must be a non-empty str, got {name!r}")

    def decorator(obj: T) -> T:
      with self._lock:
        if name in self._entries and not override and self._entries[name] is not obj:
          raise ValueError(
            f"{self.category} registry: {name!r} is already registered "
            f"({self._entries[name]!r}); pass override=True to replace it"
          )
        self._entries[name] = obj
      return obj

    return decorator

  def _why_missing(self, name: Any) -> str:
    reason = self._plugin_errors.get(name) if isinstance(name, str) else None
    if not reason:
      return ""
    if ":" in name:  # An import path (`import_paths=True`).
      return f" (could not load it by import path: {reason})"
    return f" (its plugin is unavailable: {reason})"

  def get(self, name: str) -> T:
    self._load_plugins()
    self._load_import_path(name)
    try:
      return self._entries[name]
    except KeyError:
      raise KeyError(
        f"unknown {self.category} {name!r}{self._why_missing(name)}; "
        f"registered: {sorted(self._entries)}"
      ) from None

  def validate(self, name: Any, *, argument: str) -> str:
    """Returns `name` if registered, else raises ValueError naming `argument`."""
    self._load_plugins()
    self._load_import_path(name)
    if name not in self._entries:
      own = " or your own by import path 'package.module:function'" if self._import_paths else ""
      raise ValueError(
        f"{argument}={name!r} is not a registered {self.category}{self._why_missing(name)}; "
        f"choose one of {sorted(self._entries)}{own}"
      )
    return name

  def names(self) -> list[str]:
    self._load_plugins()
    return sorted(self._entries)

  def __contains__(self, name: object) -> bool:
    self._load_plugins()
    self._load_import_path(name)
    return name in self._entries

  def __iter__(self) -> Iterator[str]:
    return iter(self.names())

  def __repr__(self) -> str:
    return f"Registry({self.category!r}, {self.names()})"


# Token mixers (attention and its variants): class(config, layer_idx, *, rngs).
MIXERS: Registry[Any] = Registry("mixer")
# Feed-forward blocks: class(config, layer_idx, *, rngs).
FFNS: Registry[Any] = Registry("ffn")
# Attention backends for reasoning_jax.ops.attention: fn(q, k, v, mask, *, scale, **mask_info).
ATTENTION_IMPLEMENTATIONS: Registry[Any] = Registry(
  "attention implementation", plugins={"pallas": "pallas_kernels.flash_attention"}
)
# Chunk-form kernels of the linear-recurrent ops, by backend name ("xla" is the op's own
# path and is not registered here): fn with the op's chunk-form signature.
GLA_CHUNK_KERNELS: Registry[Any] = Registry(
  "GLA chunk kernel", plugins={"pallas": "pallas_kernels.gla"}
)
OVQ_CHUNK_KERNELS: Registry[Any] = Registry(
  "OVQ chunk kernel", plugins={"pallas": "pallas_kernels.ovq"}
)
# Fused dequant-matmul kernels for quantized linears (reasoning_jax.layers.quantized), by
# backend name ("xla" is the reference path, not registered): fn(x [M, d_in], qw, *, dtype,
# interpret) -> [M, d_out].
DEQUANT_MATMUL_KERNELS: Registry[Any] = Registry(
  "dequant-matmul kernel", plugins={"pallas": "pallas_kernels.dequant_matmul"}
)
# Decode kernels of the sparse heads (reasoning_jax.ops.sparse_decode), by backend name ("xla"
# is the ops' own path, not registered): a `DecodeKernels(retrieval_decode, block_sparse_decode)`
# with the signatures of the ops' references plus `interpret=`.
SPARSE_DECODE_KERNELS: Registry[Any] = Registry(
  "sparse decode kernel", plugins={"pallas": "pallas_kernels.sparse_decode"}
)
# RoPE frequency schedules: fn(head_dim, theta, scaling) -> inv_freq.
ROPE_TYPES: Registry[Any] = Registry("rope type")
# Reward functions for reasoning_jax.rewards: fn(completion: str, answer: str, **fields) -> float.
# A user's own reward is named by import path ("my_rewards:strict_boxed").
REWARDS: Registry[Any] = Registry("reward", import_paths=True)
