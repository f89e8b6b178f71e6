r"""Weight quantization of one model: RTN vs GPTQ vs BPDQ at 2/3/4 bits.

  python -m experiments.quantize [--config=configs/quantize.py[:quick]] \
      [--config.settings="('gptq-w2g128','bpdq-w2g256')"] [--config.hf_dir=/m/Qwen3-0.6B]

Thin absl main over `reasoning_jax.evaluate.quantize.run`: the model is trained here once
(SFT from scratch on the main job's task; reused afterwards) or read from a local HF folder;
every row quantizes a fresh copy of it with `reasoning_jax.quant.quantize_model` from each
seed's calibration batches and is measured on the same held-out data (weight error in the
calibration Hessian, perplexity, greedy accuracy, bytes). GPTQ: Frantar et al.,
arXiv:2210.17323; BPDQ: Chen et al., arXiv:2602.04163. Writes `<workdir>/results.md`,
`results.json`, `tradeoff.png` and `CITATIONS.bib`.
"""

import os

from absl import app

_DEFAULT = os.path.join(os.path.dirname(__file__), "..", "configs", "quantize.py")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from reasoning_jax.evaluate.quantize import run
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

  _CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT, "Quantization config.")
  app.run(main)
