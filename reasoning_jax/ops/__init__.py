"""Pure functions of arrays; each op's readable reference lives here."""

from reasoning_jax.ops.attention import attention, attention_reference, make_attention_mask
from reasoning_jax.ops.momentum import momentum_attention, momentum_shear
from reasoning_jax.ops.monotone import monotone_ffn
