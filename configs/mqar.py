"""Config for `python -m experiments.mqar`: MQAR (Zoology, Arora et al., arXiv:2312.04927).

Zoology's recipe (spec `memory_attention.md` §0.4 (a)): V = 8192, keys in [1, V/2), values in
[V/2, V), power-law query gaps with a = 0.01, random non-query tokens, test seed = train + 10.
Zoology sweeps T in {64 ... 512} and kv in {4 ... 64} with 100k train / 3k test examples and
2-layer models (with MLPs) of width 64-512, many epochs. Here, at CPU size: T = 128, the number
of key-value pairs kv in {8, 16, 32} (one task entry each), 2-layer width-128 models (2 heads,
head dim 64), a few thousand steps.

Mixers ("<registry name>@<layers>"):
  * attention@2: full softmax attention (the KV cache grows with T);
  * gla@2: gated linear attention, state D x D = 4096 floats per head;
  * ovq_eq@2: OVQ attention with the same state budget per head: 16 slots x (D + Dv + 1)
    + a 16-token chunk buffer x (D + Dv) = 2064 + 2048 = 4112 floats;
  * ovq@2 (default 1024 slots, chunk 64) is not listed: at T = 128 it never fills and equals
    attention (its unbounded limit), which says nothing about compression.
"""

import ml_collections

def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.title = "MQAR (Zoology)"
  c.workdir = "outputs/mqar"
  c.seeds = (0, 1, 2)
  c.threshold = 0.9
  c.models = ("attention@2", "gla@2", "ovq_eq@2")
  # Equal-state OVQ (see the docstring); registered by experiments.induction.
  c.mixer_variants = {"ovq_eq": {"kind": "ovq", "num_slots": 16, "chunk_size": 16}}
  c.momentum_variants = {}
  c.tasks = ("mqar_kv8", "mqar_kv16", "mqar_kv32")
  c.task_configs = {
      f"mqar_kv{kv}": {"generator": "mqar", "num_train": 20000, "num_test": 1000,
                       "loss_on": "all",
                       "kwargs": {"vocab_size": 8192, "seq_len": 128, "num_kv_pairs": kv,
                                  "power_a": 0.01, "random_non_queries": True}}
      for kv in (8, 16, 32)
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
