"""Pallas kernels for reasoning_jax, one folder per op.

Each kernel folder exports the fast op, a readable reference with the same
signature (`<op>_reference`) and, where the op has a backend switch in
`reasoning_jax`, a `register()` adapter for the matching registry.

  * `pallas_kernels.flash_attention`: causal / sliding-window grouped-query
    flash attention, forward and backward.
"""
