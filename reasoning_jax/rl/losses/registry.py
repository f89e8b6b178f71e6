"""The loss registry: `LOSSES` (name -> loss function and config class) and construction by name.

A loss is a function of the shared signature (`reasoning_jax.rl.losses`) plus a frozen config
dataclass; `register_loss("name", config_cls=...)` adds it, `loss_config` / `make_loss` build
it from a name and keyword overrides. The built-in losses register themselves in their modules
(`ppo_clip`, `cispo`, `dispo`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from reasoning_jax.registry import Registry
from reasoning_jax.rl.losses.base import LossOutput

__all__ = ["LOSSES", "BoundLoss", "LossSpec", "loss_config", "make_loss", "register_loss"]


@dataclasses.dataclass(frozen=True)
class LossSpec:
  """A `LOSSES` entry: the loss function and its config dataclass."""

  name: str
  fn: Callable[..., LossOutput]
  config_cls: type


LOSSES: Registry[LossSpec] = Registry("loss")


def register_loss(
  name: str, *, config_cls: type, override: bool = False
) -> Callable[[Callable[..., LossOutput]], Callable[..., LossOutput]]:
  """Decorator registering `fn` (the shared loss signature) with its config dataclass."""
  if not (isinstance(config_cls, type) and dataclasses.is_dataclass(config_cls)):
    raise TypeError(
      f"register_loss({name!r}): config_cls must be a dataclass type, got {config_cls!r}"
    )

  def decorator(fn):
    LOSSES.register(name, override=override)(LossSpec(name, fn, config_cls))
    return fn

  return decorator


def loss_config(name: str, **overrides) -> Any:
  """The config of the loss registered as `name`, with `overrides` applied and validated."""
  LOSSES.validate(name, argument="name")
  spec = LOSSES.get(name)
  fields = {f.name for f in dataclasses.fields(spec.config_cls)}
  unknown = sorted(set(overrides) - fields)
  if unknown:
    raise ValueError(
      f"{spec.config_cls.__name__} has no field(s) {unknown}; fields: {sorted(fields)}"
    )
  return spec.config_cls(**overrides)


@dataclasses.dataclass(frozen=True)
class BoundLoss:
  """A registered loss with its config bound; hashable, so usable as a static jit argument."""

  name: str
  fn: Callable[..., LossOutput]
  config: Any

  def __call__(self, logp, old_logp, advantages, mask, **kwargs) -> LossOutput:
    return self.fn(logp, old_logp, advantages, mask, config=self.config, **kwargs)


def make_loss(name: str, **overrides) -> BoundLoss:
  """`make_loss("dapo", eps_high=0.3)(logp, old_logp, adv, mask)` -> LossOutput."""
  config = loss_config(name, **overrides)
  return BoundLoss(name=name, fn=LOSSES.get(name).fn, config=config)
