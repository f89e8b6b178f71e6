r"""Held-out exact-match accuracy of a Hugging Face folder or of a run trained here.

  # A checkpoint as published, on GSM8K's test split (all 1319 questions, greedy):
  python -m experiments.evaluate --config=configs/evaluate.py \
      --config.sft.model.hf_dir=/data/Qwen3-0.6B --config.sft.manual_dir=/data/gsm8k
  # The newest checkpoint of an SFT or RL run, on its own task, prompt and verifier:
  python -m experiments.evaluate --config.run=outputs/rl_gsm8k
  # avg@8 / pass@8 at the source's sampling settings (generation_config.json):
  python -m experiments.evaluate --config.run=outputs/rl_gsm8k --config.num_samples=8

Writes `results.jsonl` (one line per question) and `summary.json` (accuracy, pass@k, mean
length, truncated fraction, tokens/s) to `out_dir` (default `<run>/evaluation` or
`outputs/evaluate`). `config.sft` is an SFT config (`configs/sft_gsm8k.py`: model source,
task, chat prompt, verifier) and is used only when `run` is empty; `sft_overrides` changes
fields of whichever SFT config is used (e.g. `manual_dir` when the run's data moved).
Variants: "" (GSM8K), "math" (`configs/sft_math.py`), "tiny" (CI size: fixture data, pass
--config.sft.model.hf_dir=<a tiny random checkpoint>).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import sft_gsm8k, sft_math  # noqa: E402

VARIANTS = ("", "math", "tiny")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
  c = ml_collections.ConfigDict()
  c.run = ""  # The workdir of an SFT or RL run: its newest checkpoint, task and prompt.
  c.out_dir = ""  # "": <run>/evaluation, or outputs/evaluate without a run.
  c.num_examples = 0  # The first N held-out questions; 0: all.
  c.num_samples = 1  # k of avg@k / pass@k (k > 1 needs a temperature > 0).
  # Sampling; None: the model source's (generation_config.json), but greedy with one sample.
  c.temperature = ml_collections.FieldReference(None, field_type=float)
  c.top_p = ml_collections.FieldReference(None, field_type=float)
  c.top_k = ml_collections.FieldReference(None, field_type=int)
  c.max_new_tokens = ml_collections.FieldReference(1024, field_type=int)  # None: the SFT config's.
  c.batch_size = 64
  # Params by the partition rules, questions over data x fsdp: every device decodes its share
  # of each batch. A model too large for one device: --config.mesh.data=1 --config.mesh.fsdp=-1.
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  c.seed = 0
  c.sft_overrides = ml_collections.ConfigDict({})
  c.sft = (sft_math if variant == "math" else sft_gsm8k).get_config(
    "tiny" if variant == "tiny" else ""
  )
  c.sft.model.hf_dir = ""  # Pass --config.sft.model.hf_dir (or --config.run).
  if variant == "tiny":
    c.num_examples, c.max_new_tokens, c.batch_size = 3, 16, 8
  return c
