"""SFT from scratch on synthetic arithmetic with worked solutions (CPU-sized).

  python -m experiments.sft --config=configs/sft_arith.py
  python -m experiments.sft --config=configs/sft_arith.py --config.num_steps=200 \
      --config.mesh.data=-1 --config.workdir=/tmp/sft
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.workdir = "outputs/sft_arith"
  c.seed = 0
  # Data: a TFDS builder from reasoning_jax.data (arithmetic | countdown | modular | gsm8k | math).
  c.task = "arithmetic"
  c.task_config = "easy"
  c.task_overrides = {"num_train": 20000, "num_test": 256, "ops": ("+",), "style": "compact"}
  c.data_dir = ""  # Empty: <workdir>/data.
  c.manual_dir = ""  # gsm8k / math JSONL folder.
  c.prompt_template = "{question}\n"
  c.target_field = "solution"
  c.reward = "math_exact"
  c.seq_len = 64
  c.worker_count = 0
  # Model: a preset with overrides (vocab is the byte tokenizer's).
  c.preset = "tiny-qwen3"
  c.model_overrides = {
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_layers": 4,
    "num_heads": 4,
    "num_kv_heads": 2,
    "head_dim": 32,
    "max_position_embeddings": 1024,
  }
  # Optimisation.
  c.batch_size = 64
  c.micro_batches = 1
  c.num_steps = 600
  c.learning_rate = 3e-3
  c.warmup_steps = 50
  c.weight_decay = 0.01
  c.grad_clip = 1.0
  c.chunk_size = 0  # Vocabulary-projection chunk (0 = unchunked; small vocab here).
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  # Logging, evaluation, checkpoints.
  c.log_every = 20
  c.eval_every = 200
  c.eval_examples = 128
  c.eval_max_new_tokens = 48
  c.eval_temperature = 0.0
  c.checkpoint_every = 200
  c.keep_checkpoints = 3
  c.plot = True
  return c


def sized(hidden, layers, heads, kv_heads, *, num_steps, batch_size, intermediate=None):
  """This config with another model size and budget, for experiments that train their own
  model (head dim 32, MLP `3 * hidden` unless given, workdir "" = the experiment's choice,
  one evaluation and checkpoint at the end, no plot)."""
  c = get_config()
  c.workdir = ""
  c.model_overrides = {
    "hidden_size": hidden,
    "intermediate_size": intermediate or 3 * hidden,
    "num_layers": layers,
    "num_heads": heads,
    "num_kv_heads": kv_heads,
    "head_dim": 32,
    "max_position_embeddings": 1024,
  }
  c.num_steps, c.batch_size = num_steps, batch_size
  c.eval_every = c.checkpoint_every = num_steps
  c.log_every = min(c.log_every, num_steps)
  c.plot = False
  return c
