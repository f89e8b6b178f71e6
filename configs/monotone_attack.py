"""Config for `python -m experiments.monotone_attack`: monotone FFNs vs HotFlip (CPU-sized).

"Monotonicity as an Architectural Bias for Robust Language Models" (Cooper et al.,
arXiv:2602.02686); spec `memory_attention.md` §5.

DESIGN CHOICES (spec defaults where the spec has one; deviations marked):
  * Task (deviation: the paper fine-tunes T5-small on DialogSum/HighlightSum/arXiv and attacks
    CNN/DM, impossible on a shared 2-core CPU): `summary_task`, a synthetic extractive summary
    (selective copying of the source's content tokens, each emitted as one of two random
    synonyms). It keeps the paper's structure (attack the source, score the loss of a fixed
    reference summary) and, via the synonyms, an O(1) clean loss so that "relative loss
    increase > 10%" means something; no real text corpus ships with the repo.
  * Model: decoder-only, 2 layers, width 64; unconstrained baseline FFN "relu" (non-gated
    ReLU, the T5 form) vs "monotone" (relu(x softplus(V_up)) softplus(V_down)); same shapes.
  * Protocol (§5.2): "pretrained" unconstrained model -> baseline fine-tune (warm-up 10%) and
    monotone conversion V = softplus^-1(|W| + 1e-4) + recovery fine-tune (warm-up 15%);
    AdamW weight decay 0.01 (never on V), grad clip 1.0. Deviation: lr 1e-3 and batch 32
    (the paper: 5e-5, batch 4, 7 epochs of a pretrained model) since we train from scratch.
  * Attack (§5.2): HotFlip, 5 flips at the positions of largest embedding-gradient norm, token
    maximising g . e_c, one shot; success = relative loss increase > 10% (the paper's results
    definition); n = 200 test examples per seed (paper: 100). Also reported: the same attack
    restricted to filler positions/tokens ("meaning-preserving").
"""

import ml_collections


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  """The default (CPU-sized) config, or `quick`: tiny sizes for `experiments.reproduce`."""
  if variant not in ("", "quick"):
    raise ValueError(f"unknown monotone_attack variant {variant!r}; choose '' or 'quick'")
  c = ml_collections.ConfigDict()
  c.workdir = "outputs/monotone_attack"
  c.seeds = (0, 1, 2)
  c.num_train = 20000
  c.num_test = 1000
  c.task = {"num_filler": 16, "num_content": 16, "source_len": 24, "num_keywords": 4}
  c.model = {
    "preset": "tiny-llama",
    "hidden_size": 64,
    "intermediate_size": 256,
    "num_layers": 2,
    "num_heads": 4,
    "mlp_bias": True,  # T5 FFNs have no bias; here biases stay unconstrained (spec §5.1).
    "baseline_ffn": "relu",
    "monotone_ffn": "monotone",
    "overrides": {
      "rope_scaling": None,
      "rope_theta": 10000.0,
      "tie_word_embeddings": False,
      "max_position_embeddings": 64,
    },
  }
  c.protocol = {
    "init": "pretrained",  # "pretrained" (spec §5.2) | "scratch".
    "pretrain_steps": 800,
    "finetune_steps": 400,
    "baseline_warmup": 0.10,
    "monotone_warmup": 0.15,
    "monotone_init_eps": 1e-4,
  }
  c.train = {
    "batch_size": 32,
    "learning_rate": 1e-3,
    "weight_decay": 0.01,
    "grad_clip": 1.0,
    "b1": 0.9,
    "b2": 0.999,
    "final_lr_fraction": 0.1,
    "log_every": 250,
    # num_steps / warmup_steps are set per stage.
  }
  c.attack = {
    "num_flips": 5,
    "success_threshold": 0.10,
    "num_examples": 200,
    "batch_size": 200,
  }
  c.notes = (
    "Clean loss floor: 4 of the 5 summary tokens are a random choice between two "
    "synonyms, so the Bayes-optimal loss is 0.8 ln 2 = 0.555 nats/token; clean "
    "accuracy counts either synonym as correct."
  )
  if variant == "quick":  # The pipeline end to end in seconds; the numbers mean nothing.
    c.workdir = "outputs/monotone_attack_quick"
    c.seeds = (0, 1)
    c.num_train, c.num_test = 64, 24
    c.task = {"num_filler": 6, "num_content": 6, "source_len": 10, "num_keywords": 2}
    c.model.update(hidden_size=16, intermediate_size=32, num_heads=2)
    c.protocol.update(pretrain_steps=4, finetune_steps=4)
    c.train.update(batch_size=8, log_every=2)
    c.attack.update(num_examples=16, batch_size=8)
  return c
