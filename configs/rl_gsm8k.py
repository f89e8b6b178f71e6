r"""RL (DISPO) of a local Hugging Face checkpoint on GSM8K, prompts in its chat template.

  python -m experiments.rl_train --config=configs/rl_gsm8k.py \
      --config.model.hf_dir=/data/Qwen3-0.6B --config.sft.manual_dir=/data/gsm8k
  python -m experiments.rl_train --config=configs/rl_gsm8k.py:tiny \
      --config.model.hf_dir=/tmp/tiny_qwen3                  # CI size, fixture data

Variants: "" (full fine-tuning), "tiny" (CI size), "lora" / "tiny_lora": LoRA adapters on
every projection over a frozen bf16 base (`config.lora`); the KL reference, when the loss
uses one, is the same weights with the adapters off (no second copy). E.g.

  python -m experiments.rl_train --config=configs/rl_gsm8k.py:lora \
      --config.model.hf_dir=/data/Qwen3-0.6B --config.sft.manual_dir=/data/gsm8k

RL starts from the checkpoint itself (`warm_start="source"`: Qwen3 is instruction-tuned);
`--config.warm_start=sft` trains `config.sft` (configs/sft_gsm8k.py) first from the same
folder. Sampling settings left None come from the folder's generation_config.json (Qwen3:
temperature 0.6, top_p 0.95, top_k 20); set them to override. The verifier is the `boxed`
one, matching the instruction (`sft.prompt.answer_format`, reward "auto").
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import sft_gsm8k  # noqa: E402


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  if variant not in sft_gsm8k.VARIANTS:
    raise ValueError(f"unknown variant {variant!r}; choose one of {sft_gsm8k.VARIANTS}")
  c = ml_collections.ConfigDict()
  c.workdir = "outputs/rl_gsm8k"
  c.seed = 0
  c.loss = "dispo"
  c.loss_overrides = ml_collections.ConfigDict({})
  c.advantage_overrides = ml_collections.ConfigDict({})
  c.model = sft_gsm8k.model_source("/data/Qwen3-0.6B")
  c.warm_start = "source"  # "source": RL from the checkpoint; "sft": config.sft first.
  c.lora = None  # Full fine-tuning; the ':lora' variants set sft_gsm8k.lora_config().
  # Speculative rollouts (reasoning_jax/rl/draft.py): a smaller HF folder with the same
  # tokenizer drafts `num_draft` tokens per policy pass; "" = plain decoding.
  c.draft = {"hf_dir": "", "tokenizer": "", "num_draft": 4}
  # Rollouts (None: the checkpoint's generation_config.json).
  c.group_size = 8
  c.prompts_per_step = 16
  c.max_new_tokens = 512
  c.temperature = ml_collections.FieldReference(None, field_type=float)
  c.top_p = ml_collections.FieldReference(None, field_type=float)
  c.top_k = ml_collections.FieldReference(None, field_type=int)
  c.dynamic_sampling = ml_collections.FieldReference(None, field_type=bool)
  c.max_dynamic_batches = 3
  c.tis_cap = 2.0
  c.reuse_update_logp = True
  # Updates.
  c.num_steps = 200
  c.learning_rate = 1e-6
  c.warmup_steps = 5
  c.optimizer = "adamw"
  c.grad_clip = 1.0
  c.ppo_epochs = 1
  c.mini_batches = 1
  c.micro_batches = 8
  c.chunk_size = 16384
  c.mesh = {"data": 1, "fsdp": -1, "tensor": 1}
  c.log_every = 1
  c.log_rollouts = 4  # Sample rows (prompt, completion, reward) to rollouts.jsonl; 0: off.
  c.eval_every = 50
  c.eval_examples = 256
  c.eval_samples = 0
  c.eval_temperature = ml_collections.FieldReference(None, field_type=float)
  c.checkpoint_every = 25
  c.keep_checkpoints = 2
  c.plot = True
  # Task, prompt and verifier (and the warm start when warm_start="sft").
  c.sft = sft_gsm8k.get_config()
  c.sft.workdir = "outputs/rl_gsm8k_warmstart"
  if variant in ("tiny", "tiny_lora"):
    tiny = sft_gsm8k.get_config("tiny")
    c.sft = tiny
    c.sft.workdir = "outputs/rl_gsm8k_tiny_warmstart"
    c.workdir = "outputs/rl_gsm8k_tiny"
    c.model = tiny.model  # Pass --config.model.hf_dir=<a tiny random checkpoint>.
    c.group_size, c.prompts_per_step, c.max_new_tokens = 2, 4, 16
    c.num_steps, c.learning_rate, c.warmup_steps, c.micro_batches = 4, 1e-3, 0, 1
    c.chunk_size = 0
    c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
    c.eval_every, c.eval_examples, c.checkpoint_every, c.plot = 1000, 2, 2, False
  if variant in ("lora", "tiny_lora"):
    c.workdir += "_lora"
    c.lora = sft_gsm8k.lora_config()
    c.learning_rate = 1e-5  # Adapters take a larger step than full fine-tuning (1e-6).
    if variant == "tiny_lora":
      c.lora = sft_gsm8k.lora_config(rank=4, dropout=0.1, base_dtype="float32")
      c.learning_rate = 1e-2
  return c
