r"""Speculative decoding on a draft/target pair: tokens per target call, acceptance, speedup.

  python -m experiments.speculative [--config=configs/speculative.py[:quick]] \
      [--config.decoders="('target','spec@2','spec@4','spec@8')"] \
      [--config.target_hf_dir=/m/target --config.draft_hf_dir=/m/draft]

Thin absl main over `reasoning_jax.evaluate.speculative.run`: the pair is trained here once
(SFT from scratch on the main job's task; reused afterwards) or read from two HF folders;
every decoder (plain `generate` on the target, `speculative_generate` at k = 2/4/8, greedy and
sampled) and SemanticSpec (`semantic@tau`, with probes trained here once on the task's
training split; Dong et al., arXiv:2602.03708) decodes the same held-out prompts over several
seeds. Token-level speculative
sampling: Leviathan et al., arXiv:2211.17192; Chen et al., arXiv:2302.01318. Writes
`<workdir>/results.md`, `results.json`, `acceptance.png`, `speedup.png` and `CITATIONS.bib`.
"""

import os

from absl import app

_DEFAULT = os.path.join(os.path.dirname(__file__), "..", "configs", "speculative.py")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from reasoning_jax.evaluate.speculative import run
  from reasoning_jax.train.metrics import quiet_library_logs

  quiet_library_logs()
  try:
    run(_CONFIG.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  with open(os.path.join(_CONFIG.value.workdir, "results.md")) as f:
    print(f.read())


if __name__ == "__main__":
  from ml_collections import config_flags

  _CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT, "Speculative decoding config.")
  app.run(main)
