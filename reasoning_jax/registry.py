"""Named registries: the single source of truth for what a config may name.

Every swappable component (token mixers, feed-forward blocks, attention backends,
and later losses, advantage estimators, KL estimators, aggregation modes and
rewards) is registered here by name. Config validation is derived from the
registry contents, so the list of valid names can never drift from the code.

Example:
  >>> from reasoning_jax import registry
  >>> @registry.MIXERS.register("my_mixer")
  ... class MyMixer: ...
  >>> registry.MIXERS.get("my_mixer")
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
  """A thread-safe mapping from names to components of one category."""

  def __init__(self, category: str):
    self.category = category
    self._entries: dict[str, T] = {}
    self._lock = threading.Lock()

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

  def get(self, name: str) -> T:
    try:
      return self._entries[name]
    except KeyError:
      raise KeyError(
        f"unknown {self.category} {name!r}; registered: {sorted(self._entries)}"
      ) from None

  def validate(self, name: Any, *, argument: str) -> str:
    """Returns `name` if registered, else raises ValueError naming `argument`."""
    if name not in self._entries:
      raise ValueError(
        f"{argument}={name!r} is not a registered {self.category}; "
        f"choose one of {sorted(self._entries)}"
      )
    return name

  def names(self) -> list[str]:
    return sorted(self._entries)

  def __contains__(self, name: object) -> bool:
    return name in self._entries

  def __iter__(self) -> Iterator[str]:
    return iter(sorted(self._entries))

  def __repr__(self) -> str:
    return f"Registry({self.category!r}, {self.names()})"


# Token mixers (attention and its variants): class(config, layer_idx, *, rngs).
MIXERS: Registry[Any] = Registry("mixer")
# Feed-forward blocks: class(config, layer_idx, *, rngs).
FFNS: Registry[Any] = Registry("ffn")
# Attention backends for reasoning_jax.ops.attention: fn(q, k, v, mask, *, scale, **mask_info).
ATTENTION_IMPLEMENTATIONS: Registry[Any] = Registry("attention implementation")
# RoPE frequency schedules: fn(head_dim, theta, scaling) -> inv_freq.
ROPE_TYPES: Registry[Any] = Registry("rope type")
