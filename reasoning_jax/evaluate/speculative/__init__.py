r"""The speculative-decoding experiment: a draft/target pair, decoders compared, tables, plots.

Token-level speculative sampling (Leviathan et al., arXiv:2211.17192; Chen et al.,
arXiv:2302.01318; `reasoning_jax.speculative`) measured on a pair that has learnt something:

  * `pair`: the pair, trained here with the SFT trainer on the main job's synthetic task
    (checkpoints reused; exported as HF folders), or two local HF folders of the user's;
  * `decoders`: the registry of decoding methods compared (`target`, `spec@k`, SemanticSpec's
    `semantic@tau` / `semantic_nofast@tau`); the extension point for later methods;
  * `probes`: SemanticSpec's probe stage (step prefixes of training-split target traces,
    `build_probe_dataset`, `train_probe`, saved under `<workdir>/probes` and reused);
  * `experiment`: `run(config)`, the measurements, `results.md`, `results.json` and plots.

`experiments/speculative.py` is its absl main, `configs/speculative.py` its config.
"""

from reasoning_jax.evaluate.speculative.decoders import (
  DECODERS,
  Decoder,
  make_decoder,
  make_decoders,
)
from reasoning_jax.evaluate.speculative.experiment import run, summarize
from reasoning_jax.evaluate.speculative.pair import Pair, hf_pair, load_pair, per_token_flops

__all__ = [
  "DECODERS",
  "Decoder",
  "Pair",
  "hf_pair",
  "load_pair",
  "make_decoder",
  "make_decoders",
  "per_token_flops",
  "run",
  "summarize",
]
