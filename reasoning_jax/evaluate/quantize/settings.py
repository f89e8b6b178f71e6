"""Rows of the quantization experiment: `<method>-w<bits>g<group>` names -> `QuantConfig`.

  "bpdq-w2g256"  BPDQ, 2 bit-planes, groups of 256 (2.1875 bits/weight)
  "gptq-w2g128"  GPTQ, 2-bit codes, groups of 128 (2.1875 bits/weight with bf16 scales and
                 uint8 zeros: the bits-matched baseline)
  "rtn-w4g128"   round-to-nearest min-max, 4 bits, groups of 128

The float model is always measured as the row "float".
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

from reasoning_jax.quant.options import QuantConfig

_NAME = re.compile(r"(rtn|gptq|bpdq)-w(\d+)g(\d+)")
# Shared flags that only some methods read: left out of the other methods' rows.
_ONLY = {
  "act_order": ("gptq",),
  "static_groups": ("gptq",),
  "sym": ("rtn", "gptq"),
  "n_iters": ("bpdq",),
  "alpha": ("bpdq",),
  "init_bits": ("bpdq",),
  "gar": ("bpdq",),
}
FLOAT = "float"


@dataclasses.dataclass(frozen=True)
class Setting:
  """One row: its name and the per-weight flags."""

  name: str
  config: QuantConfig

  @property
  def method(self) -> str:
    return self.config.method


def parse_setting(name: str, overrides: Mapping[str, Any] | None = None) -> Setting:
  """`Setting` of a row name; `overrides` (flags shared by every row, e.g. `damp`) apply to
  the fields the method uses. ValueError naming `config.settings` for a bad name."""
  match = _NAME.fullmatch(str(name))
  if not match:
    raise ValueError(
      f"config.settings: {name!r} is not '<rtn|gptq|bpdq>-w<bits>g<group>' (e.g. bpdq-w2g256)"
    )
  method, bits, group = match.group(1), int(match.group(2)), int(match.group(3))
  fields = {f.name for f in dataclasses.fields(QuantConfig)}
  extra = dict(overrides or {})
  unknown = set(extra) - fields
  if unknown:
    raise ValueError(f"config.quant: unknown flags {sorted(unknown)}; known: {sorted(fields)}")
  extra = {k: v for k, v in extra.items() if method in _ONLY.get(k, (method,))}
  config = QuantConfig(method=method, bits=bits, group_size=group, **extra)
  try:
    config.validate()
  except ValueError as e:
    raise ValueError(f"config.settings: {name!r}: {e}") from None
  return Setting(name, config)


def parse_settings(
  names: Sequence[str], overrides: Mapping[str, Any] | None = None
) -> list[Setting]:
  """Every row of `names` (duplicates refused)."""
  if len(set(names)) != len(names):
    raise ValueError(f"config.settings has duplicates: {list(names)}")
  if not names:
    raise ValueError("config.settings is empty")
  return [parse_setting(n, overrides) for n in names]
