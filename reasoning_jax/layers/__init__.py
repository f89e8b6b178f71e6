"""Flax NNX layers: parameters plus a call into one pure op.

Importing this package registers the built-in mixers and FFNs.
"""

from reasoning_jax.layers import attention, ffn, norms, rope  # noqa: F401  (registration)
from reasoning_jax.layers.attention import Attention, KVCache, SlidingWindowAttention
from reasoning_jax.layers.ffn import SwiGLU
from reasoning_jax.layers.norms import RMSNorm, rms_norm
