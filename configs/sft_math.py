r"""SFT of a local Hugging Face checkpoint on MATH with its chat template.

  python -m experiments.sft --config=configs/sft_math.py \
      --config.model.hf_dir=/data/Qwen3-0.6B --config.manual_dir=/data/math
  python -m experiments.sft --config=configs/sft_math.py:tiny \
      --config.model.hf_dir=/tmp/tiny_qwen3                  # CI size, fixture data

The GSM8K config (configs/sft_gsm8k.py, same variants "", "tiny", "lora", "tiny_lora") with
the dataset swapped by `use_math`: the `math` builder reads `train.jsonl` / `test.jsonl` from
`manual_dir` in the original MATH layout (`problem`, `solution` with the final answer in
`\boxed{}`) or MATH-500's (with `answer`, `subject`, integer `level`). The prompt is the
same chat template and boxed instruction; the SFT target is the solution itself, which ends
with its `\boxed{}` answer, and the verifier is `boxed` (reward "auto"), comparing answers as
exact numbers when both parse (`\frac{1}{2}`, `\dfrac12`, `0.5`) and as normalised LaTeX
otherwise (`reasoning_jax/rewards/numbers.py`).

MATH problems with [asy] figures make long prompts: a prompt over `prompt.max_prompt_len`
tokens (1024 here) is an error at launch naming the example; raise the limit (and `seq_len`)
if your split has longer ones.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import sft_gsm8k  # noqa: E402

VARIANTS = sft_gsm8k.VARIANTS


def use_math(c: ml_collections.ConfigDict, variant: str) -> ml_collections.ConfigDict:
  """Points an SFT config of configs/sft_gsm8k.py (variant `variant`) at MATH, in place."""
  c.task = "math"
  c.workdir = c.workdir.replace("gsm8k", "math")
  if variant in ("tiny", "tiny_lora"):
    c.manual_dir = os.path.join(sft_gsm8k.FIXTURES, "math")
  else:
    c.manual_dir = "/data/math"  # train.jsonl / test.jsonl.
    c.prompt.max_prompt_len = 1024
    c.seq_len = 2048  # Prompt + solution; longer examples are truncated.
    c.eval_max_new_tokens = 1024
  return c


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  return use_math(sft_gsm8k.get_config(variant), variant)
