"""Pallas kernels for reasoning_jax, one folder per op.

Each kernel folder exports the fast op and a readable reference with the same signature
(`<op>_reference`). The rule for every kernel package (flash, GLA, OVQ, dequant-matmul, sparse
decode): a kernel imports only `reasoning_jax.registry` and the pure-op modules below it (`reasoning_jax.ops.*`: references, masks, shared chunk math), and
registers itself into the op's registry under a backend name ("pallas") when its package is
imported. The ops dispatch on that name and never import a kernel package: the registry lists
the providing module as a plugin and imports it on the first lookup. import-linter checks the
direction (pyproject.toml).

  * `pallas_kernels.flash_attention`: causal / sliding-window grouped-query flash attention,
    forward and backward ("pallas" in `registry.ATTENTION_IMPLEMENTATIONS`).
  * `pallas_kernels.gla`: the chunk-parallel GLA forward and backward ("pallas" in
    `registry.GLA_CHUNK_KERNELS`).
  * `pallas_kernels.ovq`: the OVQ chunk readout and assignment kernels ("pallas" in
    `registry.OVQ_CHUNK_KERNELS`).
  * `pallas_kernels.dequant_matmul`: the fused dequant-matmul of bit-plane quantised linears
    ("pallas" in `registry.DEQUANT_MATMUL_KERNELS`).
  * `pallas_kernels.sparse_decode`: LycheeDecode's retrieval-head (dense + block scores) and
    sparse-head (selected blocks) decode attentions ("pallas" in
    `registry.SPARSE_DECODE_KERNELS`).

Shared by all of them: `pallas_kernels.gpu_backend`, the one place that imports Pallas' Triton
backend (deprecated in JAX 0.11), only for GPU branches, so TPU lowering and interpret mode work
on a JAX without it.
"""
