"""Sparse long-context decoding experiment: LycheeDecode, Quest, DuoAttention and full
attention, accuracy vs KV budget on passkey retrieval."""

from reasoning_jax.evaluate.sparse_decode.experiment import run_sparse_decode_experiment

__all__ = ["run_sparse_decode_experiment"]
