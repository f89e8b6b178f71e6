"""Pure functions of arrays; each op's readable reference lives here."""

from reasoning_jax.ops.attention import attention, attention_reference, make_attention_mask
