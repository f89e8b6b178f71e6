"""Config for `python -m experiments.mqar`: MQAR (Zoology, Arora et al., arXiv:2312.04927).

Zoology's recipe (spec `memory_attention.md` §0.4 (a)): V = 8192, keys in [1, V/2), values in
[V/2, V), power-law query gaps with a = 0.01, random non-query tokens, test seed = train + 10;
Zoology sweeps T in {64 ... 512} and kv in {4 ... 64} with 100k train / 3k test examples and
2-layer models (with MLPs) of width 64-512. Defaults here: T = 64, kv = 4 (Zoology's smallest
point) at a CPU-sized budget (20k train examples, 2000 steps; Zoology trains many epochs).

Mixers: `models` lists "<registry mixer name>@<layers>"; only "attention" is the default.
"gla" and "ovq" are appended once they are registered in `reasoning_jax.registry.MIXERS`
(this config adds every one of them that is registered when it is loaded).
"""

import ml_collections

_OPTIONAL_MIXERS = ("gla", "ovq")


def _registered(name: str) -> bool:
  from reasoning_jax import registry
  import reasoning_jax.layers  # noqa: F401  (registers the built-in mixers)
  return name in registry.MIXERS


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.title = "MQAR (Zoology)"
  c.workdir = "outputs/mqar"
  c.seeds = (0, 1, 2)
  c.threshold = 0.9
  c.models = ("attention@2",) + tuple(f"{m}@2" for m in _OPTIONAL_MIXERS if _registered(m))
  c.momentum_variants = {}
  c.tasks = ("mqar",)
  c.task_configs = {
      "mqar": {"num_train": 20000, "num_test": 3000, "loss_on": "all",
               "kwargs": {"vocab_size": 8192, "seq_len": 64, "num_kv_pairs": 4,
                          "power_a": 0.01, "random_non_queries": True}},
  }
  c.model = {
      "preset": "tiny-llama",
      "hidden_size": 128,
      "num_heads": 2,
      "ffn": "swiglu",  # Zoology's blocks keep their MLPs.
      "overrides": {"rope_scaling": None, "rope_theta": 10000.0, "tie_word_embeddings": False,
                    "intermediate_size": 256},
  }
  c.train = {
      "batch_size": 64,
      "num_steps": 2000,
      "learning_rate": 1e-3,
      "warmup_steps": 100,
      "weight_decay": 0.1,
      "grad_clip": 1.0,
      "b1": 0.9,
      "b2": 0.98,
      "final_lr_fraction": 0.1,
      "eval_every": 200,
      "eval_batch_size": 500,
  }
  c.notes = "Chance: 2 / V (uniform over the V/2 value ids)."
  return c
