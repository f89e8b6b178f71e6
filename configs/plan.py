"""Memory plan of a training setup: `python -m experiments.plan --config=configs/plan.py[:variant]`.

Variants: `qwen3_8b_full` (default: Qwen3-8B full fine-tuning), `qwen3_8b_lora` (LoRA r=16 on
every projection, bf16 base), `tiny` (CI size). Any field can be overridden on the command line,
e.g. `--config.device_memory_gib=80 --config.compile=False --config.mesh.fsdp=16`.

Your own checkpoint: `--config.hf_dir=/data/Qwen3-0.6B` plans the model its `config.json`
describes (only that file is read; no weights are needed or loaded) in place of the preset.
"""

import ml_collections


def get_config(variant: str = "qwen3_8b_full") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = variant
  c.preset = "qwen3-8b"
  c.hf_dir = ""  # A local HF folder: its config.json replaces the preset.
  c.model_overrides = {}
  c.mesh = {"data": 1, "fsdp": 8, "tensor": 1}  # Host devices are forced to their product.
  c.batch_size = 8  # Global sequences per step.
  c.seq_len = 2048
  # Memory policy.
  c.param_dtype = "float32"
  c.compute_dtype = "bfloat16"
  c.opt_state_dtype = "float32"
  c.remat = "full"  # none | full | dots_saveable
  c.micro_batches = 1
  c.optimizer = "adamw"
  c.attention = "flash"  # Estimate: flash (GPU/TPU kernel) or xla (materialised scores).
  c.chunk_size = 512  # Loss vocabulary-projection chunk (0: unchunked).
  # LoRA (rank 0: full fine-tuning).
  c.lora_rank = 0
  c.lora_targets = r".*mixer\.(q|k|v|o)_proj|.*ffn\.(gate|up|down)"
  c.lora_dtype = "float32"
  # Generation cache (rollouts).
  c.kv_batch = 64
  c.kv_max_len = 4096
  c.kv_dtype = ""  # "" = compute dtype.
  c.device_memory_gib = 80.0  # 0: no budget.
  c.compile = True  # Compile the step on abstract inputs for XLA's memory analysis.
  c.output = ""  # Optional JSON path for the figures.
  if variant == "qwen3_8b_full":
    pass
  elif variant == "qwen3_8b_lora":
    c.param_dtype = "bfloat16"
    c.lora_rank = 16
  elif variant == "tiny":
    c.preset = "tiny-qwen3"
    c.batch_size = 8
    c.seq_len = 64
    c.compute_dtype = "float32"
    c.remat = "none"
    c.attention = "xla"
    c.chunk_size = 0
    c.kv_batch = 8
    c.kv_max_len = 128
    c.device_memory_gib = 1.0
  else:
    raise ValueError(f"unknown variant {variant!r}; expected qwen3_8b_full, qwen3_8b_lora, tiny")
  return c
