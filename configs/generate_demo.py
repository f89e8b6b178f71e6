"""Config for `python -m experiments.generate_demo` (the quickstart main job)."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.preset = "tiny-qwen3"  # Any name in reasoning_jax.models.PRESETS.
  config.seed = 0
  config.train_steps = 300
  config.batch_size = 32
  config.seq_len = 32
  config.learning_rate = 3e-3
  config.prompt_len = 4  # Letters given to the model; it must continue the alphabet.
  config.max_new_tokens = 16
  config.num_eval_prompts = 64
  config.temperature = 0.0  # 0 = greedy.
  config.top_k = 0
  config.top_p = 1.0
  config.workdir = "outputs/generate_demo"
  return config
