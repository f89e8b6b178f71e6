"""Config for `python -m experiments.quantize`: RTN vs GPTQ vs BPDQ weight quantization.

  python -m experiments.quantize                                  # trains the model once
  python -m experiments.quantize --config=configs/quantize.py:quick
  python -m experiments.quantize --config.hf_dir=/m/Qwen3-0.6B --config.model.task=gsm8k \
      --config.model.manual_dir=/data/gsm8k --config.calibration.seq_len=512

The model (default): a `tiny-qwen3` of 4 layers at width 256 (8 heads x 32, 2 KV heads, MLP
768: every input dimension divides 256, so groups of 256 fit), trained from scratch with the
SFT trainer on the main job's task (synthetic addition with worked solutions, byte tokenizer),
once, in `<workdir>/model`. `config.model` is an ordinary SFT config (`configs/sft_arith.py`);
its task also gives the held-out data and the verifier when `config.hf_dir` (a local Hugging
Face folder; `config.tokenizer`: "" = the folder's tokenizer.json, "byte", or a path) replaces
the trained model.

Rows (`config.settings`, `<method>-w<bits>g<group>`): RTN and GPTQ with groups of 128 and BPDQ
with groups of 256 at 2, 3 and 4 bits. At 2 bits both sides store 2.1875 bits per weight
(uint k-bit codes + bf16 scale + uint8 zero per 128 weights; 2 bit-planes + 3 bf16
coefficients per 256), the spec's matched comparison (BPDQ g256 vs GPTQ g128); at 3 and 4
bits BPDQ stores 0.06 and 0.125 more bits per weight (see the table's column).
`config.quant` holds flags shared by every row (`QuantConfig` fields, e.g. damp, n_iters).

Variants: "" (3 seeds, about 20 min on 2 CPU cores after the model is trained, which takes
about 5 min); "quick" (a tiny model, 2 seeds, groups of 32: the pipeline end to end for CI; its
numbers say nothing about the methods).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import sft_arith  # noqa: E402

_VARIANTS = ("", "quick")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  if variant not in _VARIANTS:
    raise ValueError(f"unknown quantize variant {variant!r}; choose one of {_VARIANTS}")
  c = ml_collections.ConfigDict()
  c.workdir = "outputs/quantize"
  c.seeds = (0, 1, 2)  # Calibration seeds: each draws its own training-split batches.
  c.settings = (
    "rtn-w2g128", "gptq-w2g128", "bpdq-w2g256",
    "rtn-w3g128", "gptq-w3g128", "bpdq-w3g256",
    "rtn-w4g128", "gptq-w4g128", "bpdq-w4g256",
  )  # fmt: skip
  c.quant = ml_collections.ConfigDict()  # QuantConfig flags shared by every row.
  c.sequential = "true"  # GPTQModel's true_sequential (BPDQ runs inside it); "layer" / "parallel".
  c.calibration = ml_collections.ConfigDict()
  c.calibration.num_batches = 8
  c.calibration.batch_size = 16
  c.calibration.seq_len = 64
  c.eval = ml_collections.ConfigDict()
  c.eval.ppl_examples = 128
  c.eval.batch_size = 32
  c.eval.accuracy_prompts = 128
  c.eval.max_prompt_len = 32
  c.eval.max_new_tokens = 40
  c.model = sft_arith.sized(256, 4, 8, 2, num_steps=300, batch_size=32)
  c.hf_dir = ""  # A local HF folder instead of the model trained here.
  c.tokenizer = ""  # "" (the folder's tokenizer.json), "byte", or a path.
  c.plot = True
  if variant == "quick":
    c.workdir = "outputs/quantize_quick"
    c.seeds = (0, 1)
    c.settings = ("rtn-w4g32", "gptq-w2g32", "bpdq-w2g32")
    c.quant.n_iters = 2
    c.calibration.num_batches, c.calibration.batch_size, c.calibration.seq_len = 2, 4, 48
    c.eval.ppl_examples = c.eval.batch_size = c.eval.accuracy_prompts = 8
    c.eval.max_new_tokens = 16
    c.model = sft_arith.sized(64, 2, 2, 1, num_steps=20, batch_size=8, intermediate=128)
    c.model.task_overrides = dict(c.model.task_overrides, num_train=256, num_test=16)
    c.model.seq_len = 48
    c.model.log_every = c.model.eval_every = c.model.checkpoint_every = 20
    c.model.eval_examples, c.model.eval_max_new_tokens = 8, 16
  return c
