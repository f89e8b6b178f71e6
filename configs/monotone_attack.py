"""Config for `python -m experiments.monotone_attack`: monotone FFNs vs HotFlip and UAT (CPU-sized).

"Monotonicity as an Architectural Bias for Robust Language Models" (Cooper et al.,
arXiv:2602.02686); spec `memory_attention.md` §5.

DESIGN CHOICES (spec defaults where the spec has one; deviations marked):
  * Task (deviation: the paper fine-tunes T5-small on DialogSum/HighlightSum/arXiv and attacks
    CNN/DM, impossible on a shared 2-core CPU): `frequency_summary_task`, a synthetic
    summary of a 64-token source: its 2 most frequent of 3 content tokens ("topics"), most
    frequent first, each written as one of two random synonyms (a clean-loss floor of
    2 ln 2 / 3 = 0.462 nats/token, so "relative loss increase > 10%" means something). The
    count gaps are uniform on 1..16, so 5 flips can move the answer on some examples and not on
    others (the attack is graded), and >= 16 of 64 positions are filler (meaning-preserving
    flips exist). Measured at these sizes (3 seeds): HotFlip succeeds on 61% of the
    baseline's examples (docs/methods/monotone_ffn.md).
  * Model: decoder-only, 2 layers, width 32, 4 heads, FFN width 128; unconstrained baseline FFN
    "relu" (non-gated ReLU, the T5 form) vs "monotone" (relu(x softplus(V_up)) softplus(
    V_down)); same shapes. Width 32 (not 64) keeps 3 seeds within ~10 minutes.
  * Protocol (§5.2): "pretrained" unconstrained model -> baseline fine-tune (warm-up 10%) and
    monotone conversion V = softplus^-1(|W| + 1e-4) + recovery fine-tune (warm-up 15%);
    AdamW weight decay 0.01 (never on V), grad clip 1.0. Deviation: lr 2e-3 and batch 32
    (the paper: 5e-5, batch 4, 7 epochs of a pretrained model) since we train from scratch.
  * HotFlip (§5.2): 5 flips at the source positions of largest embedding-gradient norm, each to
    the token maximising g . e_c (= argmax of g . (e_c - e_current) at that position), one
    shot; success = relative loss increase > 10% (the paper's results definition); n = 200
    held-out examples per seed (paper: 100). Also the same attack restricted to filler
    positions and tokens ("meaning-preserving").
  * UAT (§5.2): a 3-token trigger (DESIGN CHOICE; the spec gives no length) prepended to the
    source, tokens from the source vocabulary; coordinate search, one position per iteration,
    the 4 best candidates by the averaged gradient evaluated by their true loss; 3 restarts x
    50 iterations at most (a restart stops after a full sweep without improvement); learned
    on 80 held-out examples, tested on the next 120.
  * Statistics: 1000-resample bootstrap 95% intervals per model and seed (the paper's
    resamples); 3 seeds, mean ± std.
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
  c.task = {
    "num_filler": 16,
    "num_content": 12,
    "source_len": 64,
    "num_topics": 3,
    "summary_len": 2,
    "min_count": 2,
    "max_gap": 16,
    "min_filler": 16,
  }
  c.model = {
    "preset": "tiny-llama",
    "hidden_size": 32,
    "intermediate_size": 128,
    "num_layers": 2,
    "num_heads": 4,
    "mlp_bias": True,  # T5 FFNs have no bias; here biases stay unconstrained (spec §5.1).
    "baseline_ffn": "relu",
    "monotone_ffn": "monotone",
    "overrides": {
      "rope_scaling": None,
      "rope_theta": 10000.0,
      "tie_word_embeddings": False,
      "max_position_embeddings": 128,
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
    "learning_rate": 2e-3,
    "weight_decay": 0.01,
    "grad_clip": 1.0,
    "b1": 0.9,
    "b2": 0.999,
    "final_lr_fraction": 0.1,
    "log_every": 200,
    # num_steps / warmup_steps are set per stage.
  }
  c.attack = {
    "num_flips": 5,
    "success_threshold": 0.10,
    "num_examples": 200,
    "batch_size": 200,
  }
  c.uat = {
    "trigger_len": 3,
    "num_restarts": 3,
    "num_iterations": 50,
    "num_candidates": 4,
    "num_train": 80,
    "num_test": 120,
    "seed": 0,
  }
  c.bootstrap = {"num_resamples": 1000, "confidence": 0.95, "seed": 0}
  c.notes = ""
  if variant == "quick":  # The pipeline end to end in seconds; the numbers mean nothing.
    c.workdir = "outputs/monotone_attack_quick"
    c.seeds = (0, 1)
    c.num_train, c.num_test = 64, 40
    c.task.update(num_filler=6, num_content=6, source_len=16, max_gap=3, min_filler=4)
    c.model.update(hidden_size=16, intermediate_size=32, num_heads=2)
    c.protocol.update(pretrain_steps=4, finetune_steps=4)
    c.train.update(batch_size=8, log_every=2)
    c.attack.update(num_examples=16, batch_size=8)
    c.uat.update(trigger_len=2, num_restarts=2, num_iterations=3, num_train=8, num_test=8)
    c.bootstrap.update(num_resamples=100)
  return c
