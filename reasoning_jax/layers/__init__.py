"""Flax NNX layers: parameters plus a call into one pure op.

Importing this package registers the built-in mixers and FFNs.
"""

from reasoning_jax.layers import (
  attention,
  conv,
  ffn,
  gla,
  momentum,
  monotone,
  norms,
  ovq,
  rope,
  rosa,
)  # noqa: F401
from reasoning_jax.layers.attention import Attention, KVCache, SlidingWindowAttention
from reasoning_jax.layers.conv import BaseConv, ConvCache, make_conv_mixer
from reasoning_jax.layers.ffn import SwiGLU
from reasoning_jax.layers.gla import GLACache, GatedLinearAttention, make_gla_mixer
from reasoning_jax.layers.norms import RMSNorm, rms_norm
from reasoning_jax.layers.ovq import OVQAttention, make_ovq_mixer
from reasoning_jax.layers.rosa import RosaAttention, RosaCache, make_rosa_mixer
from reasoning_jax.layers.momentum import MomentumAttention, MomentumKVCache, make_momentum_mixer
from reasoning_jax.layers.monotone import (
  MonotoneFFN,
  is_monotone_ffn,
  make_monotone_ffn,
  monotone_weight_decay_mask,
  require_monotone_ffns,
)
