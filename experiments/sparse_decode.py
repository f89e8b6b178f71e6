r"""Sparse long-context decoding: accuracy vs KV budget of LycheeDecode, Quest, DuoAttention
and full attention on passkey retrieval; a thin absl main over
`reasoning_jax.evaluate.sparse_decode`.

  python -m experiments.sparse_decode [--config=configs/sparse_decode.py[:quick|:accelerator]]
  python -m experiments.sparse_decode --config.hf.dir=/path/to/hf_folder

Writes `<workdir>/results.md`, `results.json`, `accuracy_vs_budget.png`,
`kv_read_vs_budget.png`, `roles/`, `runs/` and `model/`.
"""

import os

from absl import app

_DEFAULT = os.path.join(os.path.dirname(__file__), "..", "configs", "sparse_decode.py")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from reasoning_jax.evaluate.sparse_decode import run_sparse_decode_experiment

  run_sparse_decode_experiment(_CONFIG.value)


if __name__ == "__main__":
  from ml_collections import config_flags

  _CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT, "Sparse decoding config.")
  app.run(main)
