"""Learning from a teacher's own samples: rejection sampling (RFT) and TrajFusion.

* `sampling`: N verified trajectories per problem from any zoo model or Hugging Face folder
  with the KV-cache `generate` (prompts sharded over the mesh), resumable;
* `trajfusion`: TrajFusion's construction ("Beyond Rejection Sampling: Trajectory Fusion for
  Scaling Mathematical Reasoning", arXiv:2602.04391): error statistics, the k rule, the wrong
  trajectories chosen per distinct answer, fused wrong -> reflect -> right responses;
* `dataset`: the RFT and TrajFusion SFT datasets from the same samples (ArrayRecord through
  the `rft` TFDS builder, read by the SFT trainer) with their statistics.

The room sits beside `speculative` and `credit`: it runs models through `generate` and writes
data; the SFT trainer above reads what it writes.
"""

from reasoning_jax.rft.dataset import EmptyDatasetError, build_sft_datasets, write_sft_dataset
from reasoning_jax.rft.sampling import (
  SamplingConfig,
  SamplingError,
  SamplingSummary,
  read_samples,
  sample_trajectories,
)
from reasoning_jax.rft.trajfusion import (
  DEFAULT_REFLECTION,
  ErrorStats,
  FusedSample,
  ProblemSamples,
  Trajectory,
  TrajFusionConfig,
  check_reflection,
  error_stats,
  fuse,
  num_wrong_segments,
  rft_samples,
  select_wrong,
  trajfusion_samples,
)

__all__ = [
  "DEFAULT_REFLECTION",
  "EmptyDatasetError",
  "ErrorStats",
  "FusedSample",
  "ProblemSamples",
  "SamplingConfig",
  "SamplingError",
  "SamplingSummary",
  "Trajectory",
  "TrajFusionConfig",
  "build_sft_datasets",
  "check_reflection",
  "error_stats",
  "fuse",
  "num_wrong_segments",
  "read_samples",
  "rft_samples",
  "sample_trajectories",
  "select_wrong",
  "trajfusion_samples",
  "write_sft_dataset",
]
