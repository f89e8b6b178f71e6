"""Speculative decoding: a cheap draft proposes, the target verifies, the output stays exact.

A room of its own above `generate` (whose validation, sampling and output type it reuses)
and below `rl` (whose rollouts may call it in place of `generate`):

  * `acceptance`: the pure accept/reject step of token-level speculative sampling
    (Leviathan et al., arXiv:2211.17192; Chen et al., arXiv:2302.01318) and its cost model;
  * `decode`: `speculative_generate`, the batched static-shape decoder on two zoo models;
  * SemanticSpec ("Beyond Tokens: Semantic-Aware Speculative Decoding for Efficient Inference
    by Probing Internal States", Dong et al., arXiv:2602.03708), step-level speculation:
    `steps` (step boundaries by token id), `probe` (the MLP probes and hidden-state pooling),
    `step_acceptance` (the pure step test), `semantic` (`semantic_speculative_generate`),
    `probe_labels` (offline samples, features and labels) and `probe_train` (training, save,
    `load_probe`).

  >>> from reasoning_jax.speculative import speculative_generate
  >>> out = speculative_generate(target, draft, prompts, lengths, max_new_tokens=64,
  ...                            num_draft=4, temperature=0.0)
"""

from reasoning_jax.speculative.acceptance import (
  Acceptance,
  accept_drafts,
  expected_speedup,
  expected_tokens_per_call,
)
from reasoning_jax.speculative.decode import check_pair, check_tokenizers, speculative_generate
from reasoning_jax.speculative.probe import DRAFT_HIDDEN, TARGET_HIDDEN, Probe, pool_hidden
from reasoning_jax.speculative.probe_labels import (
  build_probe_dataset,
  cluster_share_labels,
  greedy_clusters,
  sample_steps,
  step_features,
  verifier_labels,
)
from reasoning_jax.speculative.probe_train import load_probe, save_probe, train_probe
from reasoning_jax.speculative.semantic import semantic_speculative_generate
from reasoning_jax.speculative.step_acceptance import (
  StepAcceptance,
  accept_steps,
  expected_semantic_speedup,
  fast_path_ok,
  step_output_distribution,
)
from reasoning_jax.speculative.steps import (
  boundary_ids_from_tokenizer,
  split_steps,
  step_prefix_lengths,
)

__all__ = [
  "DRAFT_HIDDEN",
  "TARGET_HIDDEN",
  "Acceptance",
  "Probe",
  "StepAcceptance",
  "accept_drafts",
  "accept_steps",
  "boundary_ids_from_tokenizer",
  "build_probe_dataset",
  "check_pair",
  "check_tokenizers",
  "cluster_share_labels",
  "expected_semantic_speedup",
  "expected_speedup",
  "expected_tokens_per_call",
  "fast_path_ok",
  "greedy_clusters",
  "load_probe",
  "pool_hidden",
  "sample_steps",
  "save_probe",
  "semantic_speculative_generate",
  "speculative_generate",
  "split_steps",
  "step_features",
  "step_output_distribution",
  "step_prefix_lengths",
  "train_probe",
  "verifier_labels",
]
