"""Config for `python -m experiments.mqar`: MQAR (Zoology, Arora et al., arXiv:2312.04927).

  python -m experiments.mqar                                  # CPU scale (default)
  python -m experiments.mqar --config=configs/mqar.py:zoology # Zoology's scale (accelerator)
  python -m experiments.mqar --config=configs/mqar.py:ablate  # OVQ readings (issue 21)
  python -m experiments.mqar --config=configs/mqar.py:state   # state-size curve (issue 21)
  python -m experiments.mqar --config=configs/mqar.py:context # the hybrid at T = 128, 192
  python -m experiments.mqar --config=configs/mqar.py:window8  # ... at T = 128, window 8
  python -m experiments.mqar --config=configs/mqar.py:window32 # ... at T = 128, window 32
  python -m experiments.mqar --config=configs/mqar.py:kv16     # ... kv = 16 (kv32: 32 pairs)
  python -m experiments.mqar --config=configs/mqar.py:kv16_state  # kv = 16, larger states
  python -m experiments.mqar --config=configs/mqar.py:kv16_mix    # kv = 16, mixed training
  python -m experiments.mqar --config=configs/mqar.py:kv32_mix    # kv = 32, mixed training
  python -m experiments.mqar --config=configs/mqar.py:kv32_mix_state  # ... 32 and 64 slots
  python -m experiments.mqar --config=configs/mqar.py:hybrid      # kv16_mix, 1200 steps

Zoology's recipe (spec `memory_attention.md` §0.4 (a)): keys in [1, V/2), values in [V/2, V),
power-law query gaps with a = 0.01, random non-query tokens, loss and accuracy only at the
query positions, test seed = train + 10. Zoology sweeps T in {64 ... 512} and kv in {4 ... 64}
with V = 8192, 100k train / 3k test examples and 2-layer models (with MLPs) of width 64-512,
many epochs.

DESIGN CHOICES (deviations for a shared 2-core CPU, default "cpu" scale):
  * V = 256 (Zoology: 8192), T = 64, kv in {4, 8, 16} (one task entry each), 20k train
    examples, 400 steps of batch 64 at lr 3e-3, 500 test examples. A probe: 2-layer attention
    reached 0.97 on kv = 8 after 450 steps (width 128, lr 3e-3) while width 64 at lr 1e-3 was
    at 0.19 after 600. V = 8192 costs about 2-4 s per step here. "zoology": V = 8192, T = 128,
    kv in {8, 16, 32}, 2000 steps at lr 1e-3, 3000 test examples (Zoology's count).
  * Models: 2 layers, width 128, 2 heads of dimension 64, SwiGLU MLPs (Zoology's blocks keep
    their MLPs); "<registry name>[+<name>...]@<layers>", a `+` pattern cycled over layers:
      - attention@2: full softmax attention in both layers (RoPE; the KV cache grows with T),
        the reference;
      - base_conv+gla@2: Zoology's hybrid, layer 0 a short gated convolution (BaseConv,
        kernel 3, mixer "base_conv"), layer 1 gated linear attention with a D x D = 4096-float
        state per head;
      - base_conv+ovq_eq@2: the same hybrid with OVQ attention at GLA's state budget per head:
        16 slots x (D + Dv + 1) + a 16-token chunk buffer x (D + Dv) = 2064 + 2048 = 4112;
      - ovq@2 (default 1024 slots, chunk 64) is not listed: at these T it never fills and
        equals attention (its unbounded limit), which says nothing about compression.
    Why this mix (probes at this budget, 400 steps, held-out accuracy): the position-free
    mixers need local features to bind a key to the value after it. Two GLA layers stayed at
    chance (kv = 4: 0.011 / 0.009, 2 seeds) and GLA after a 4-token sliding-window attention
    layer did too (kv = 8: 0.007), while base_conv+gla reached 0.78 / 0.48 / 0.35 on kv = 4.
    Attention behaves the other way round: attention@2 (RoPE makes a previous-token head in
    layer 0) reached 0.99 / 0.80 / 0.83 on kv = 4, sliding-window(4)+attention 1.00 on kv = 8,
    but base_conv+attention only 0.15 / 0.02 / 0.11 on kv = 4 (0.03 on kv = 8 after 1000
    steps): under this budget each family is given the layer 0 it learns with, and the
    comparison is of the recall layer. Zoology itself trains every model with its conv layer,
    for many epochs. `--config.models` runs any other mix.
"""

import ml_collections

_SCALES = {
  "cpu": {
    "vocab_size": 256,
    "seq_len": 64,
    "kv": (4, 8, 16),
    "num_steps": 400,
    "learning_rate": 3e-3,
    "eval_every": 100,
    "num_test": 500,
  },
  # Tiny sizes for `experiments.reproduce --suite=quick`: the pipeline end to end in seconds.
  "quick": {
    "vocab_size": 64,
    "seq_len": 32,
    "kv": (4,),
    "num_steps": 8,
    "learning_rate": 3e-3,
    "eval_every": 4,
    "num_test": 32,
  },
  "zoology": {
    "vocab_size": 8192,
    "seq_len": 128,
    "kv": (8, 16, 32),
    "num_steps": 2000,
    "learning_rate": 1e-3,
    "eval_every": 200,
    "num_test": 3000,
  },
}


# OVQ at GLA's state budget (16 slots, chunk 16: 4112 vs 4096 floats per head), one entry
# per reading of the paper; every other flag at the spec default (`reasoning_jax.ops.ovq`).
_OVQ_EQ = {"kind": "ovq", "num_slots": 16, "chunk_size": 16}
_OVQ_READINGS = {
  "ovq_eq": {},  # spec defaults: saturating, farthest-first, running mean, exact chunk keys
  "ovq_eq_renorm": {"renormalize": True},
  "ovq_eq_every": {"schedule": "every_token"},
  "ovq_eq_dirichlet": {"schedule": "dirichlet"},  # alpha = N / 4 = 4: 7, 9, 11, 12 slots
  "ovq_eq_linear": {"schedule": "linear"},  # full after 4 N = 64 tokens = T: 4, 8, 12, 16
  "ovq_eq_random": {"seeding": "random"},
  "ovq_eq_constlr": {"update": "constant"},  # update_lr 0.1
  "ovq_eq_vq": {"readout": "vq"},
}
# The hybrid of the paper: a sliding-window attention layer (RoPE) before the OVQ layer, with
# its controls: the same window before GLA, and two sliding-window layers (how much of the
# task the window alone solves: power-law gaps put most queries near their keys).
_SWA_HYBRID = "sliding_attention+ovq_eq@2"
_SWA_CONTROLS = ("sliding_attention+gla@2", "sliding_attention@2")
_SWA_WINDOW = 16  # tokens (T = 64)
# State-size curve: OVQ slots N (chunk 16, D = Dv = 64: N (2D + 1) + 16 * 2D floats per
# head) against GLA with the even head dim d whose d x d state is nearest.
_STATE_SLOTS = (8, 16, 32, 64)  # 3080, 4112, 6176, 10304 floats per head
_STATE_GLA_DIMS = (56, 64, 78, 102)  # 3136, 4096, 6084, 10404 floats per head
# Longer contexts at a fixed state and a fixed window: kv = 8 pairs in T = 128 and 192 tokens
# (T = 64 is the `ablate` sweep), so the query gaps grow past the 16-token window while the
# OVQ dictionary (16 slots) and GLA's state stay the size they were. Full attention is left
# out: its state grows with T, and at 400 steps it was seed-bound already at T = 64.
_LONG_SEQ_LENS = (128, 192)  # MQAR needs V = 256 > T
# The hybrid and its controls at other windows, T = 128 (the `context` run has window 16): a
# narrower window leaves more of the recall to the recurrent layer, a wider one solves more of
# the task alone (power-law gaps put most queries near their keys).
_WINDOW_VARIANTS = {"window8": 8, "window32": 32}
# The hybrid and its controls with more pairs to recall, T = 128 and the 16-token window: at
# kv = 32 the 16-slot dictionary holds fewer slots than there are keys, and GLA's state the
# same 4096 floats as at kv = 8.
_PAIRS_VARIANTS = {"kv16": 16, "kv32": 32}
# `kv16_state`: the kv16 run with larger states in the recurrent layer, OVQ with 32 and 64
# slots against GLA with head dim 102 (the 64-slot state; the model-wide head dim also widens
# the window layer's heads), to tell a capacity limit from an optimisation one.
_PAIRS_STATE = {"ovq_s32": 32, "ovq_s64": 64}
_PAIRS_STATE_GLA = {"gla_d102": 102}
# `kv16_mix` / `kv32_mix`: the kv16 / kv32 runs trained on Zoology's mixture (equal parts of
# kv = 4, 8, 16 (, 32) at T = 128, tested on the largest count alone), with full attention as
# the upper bound: at kv = 16 the single-count recipe failed every model, attention included
# (0.070 after 400 steps), and the easier rows give the recall circuit a gradient before the
# hard ones can. At kv = 32 the 16-slot dictionary has half as many slots as there are keys.
_MIX_VARIANTS = {"kv16_mix": (4, 8, 16), "kv32_mix": (4, 8, 16, 32)}
# `kv32_mix_state`: kv32_mix's hybrid with 32 and 64 slots (as many slots as keys, and twice),
# 1200 steps, 6 seeds (whether a run finds the recall circuit is seed-bound here): at 16 slots
# it recalled 0.054 where softmax attention reached 0.835.
# `hybrid`: the reproduction suite's test of the paper's reading (`experiments.reproduce
# --only=mqar_hybrid`): kv16_mix for 1200 steps with softmax attention, the OVQ hybrid and the
# window then GLA (softmax attention needs 600-800 steps to form its recall circuit at kv = 16;
# the window alone is left out: at 400 steps it was at 0.019). `hybrid_quick`: its tiny copy.
_HYBRID_MODELS = ("attention@2", _SWA_HYBRID, _SWA_CONTROLS[0])
_HYBRID_STEPS = 1200
_VARIANTS = (
  "ablate",
  "state",
  "context",
  *_WINDOW_VARIANTS,
  *_PAIRS_VARIANTS,
  "kv16_state",
  *_MIX_VARIANTS,
  "kv32_mix_state",
  "hybrid",
  "hybrid_quick",
)


def _variant(c: ml_collections.ConfigDict, variant: str) -> None:
  """The OVQ sweeps of issue 21 on the CPU scale (see `get_config`): kv = 8, except the
  `kv16` / `kv32` runs of the sliding-window hybrid."""
  c.tasks = ("mqar_kv8",)
  c.task_configs = {"mqar_kv8": c.task_configs["mqar_kv8"]}
  c.workdir = f"outputs/mqar_{variant}"
  if variant in ("hybrid", "hybrid_quick"):
    _variant(c, "kv16_mix")
    c.workdir = "outputs/mqar_kv16_mix_long" if variant == "hybrid" else "outputs/mqar_hybrid_quick"
    c.models = _HYBRID_MODELS
    c.train.num_steps = _HYBRID_STEPS
    if variant == "hybrid_quick":  # The quick scale's sizes, the mixture of 2 and 4 pairs.
      q = _SCALES["quick"]
      c.seeds = (0, 1)
      c.train.update(num_steps=q["num_steps"], eval_every=q["eval_every"])
      task = c.task_configs[c.tasks[0]].to_dict()
      task.update(num_train=64, num_test=q["num_test"], train_kwargs={"num_kv_pairs": (2, 4)})
      task["kwargs"].update(vocab_size=q["vocab_size"], seq_len=q["seq_len"], num_kv_pairs=4)
      c.tasks = ("mqar_kv4_t32",)
      c.task_configs = {"mqar_kv4_t32": task}
      c.model_overrides = {spec: {"sliding_window": 8} for spec in c.models[1:]}
    return
  if variant == "kv32_mix_state":
    _variant(c, "kv32_mix")
    c.workdir = "outputs/mqar_kv32_mix_state"
    c.title = (
      "MQAR kv = 32 (kv = 4 / 8 / 16 / 32 mixture): the sliding-window hybrid with 32 and 64 slots"
    )
    c.mixer_variants = {name: {**_OVQ_EQ, "num_slots": n} for name, n in _PAIRS_STATE.items()}
    c.models = tuple(f"sliding_attention+{name}@2" for name in _PAIRS_STATE)
    c.model_overrides = {spec: {"sliding_window": _SWA_WINDOW} for spec in c.models}
    c.train.num_steps = _HYBRID_STEPS
    c.seeds = (0, 1, 2, 3, 4, 5)
    return
  if variant == "kv16_state":
    _variant(c, "kv16")
    c.workdir = "outputs/mqar_kv16_state"
    c.title = "MQAR kv = 16 at T = 128: the sliding-window hybrid with larger states"
    c.mixer_variants = {name: {**_OVQ_EQ, "num_slots": n} for name, n in _PAIRS_STATE.items()}
    c.mixer_variants.update({name: {"kind": "gla"} for name in _PAIRS_STATE_GLA})
    c.models = tuple(f"sliding_attention+{name}@2" for name in (*_PAIRS_STATE, *_PAIRS_STATE_GLA))
    c.model_overrides = {spec: {"sliding_window": _SWA_WINDOW} for spec in c.models}
    for name, d in _PAIRS_STATE_GLA.items():
      c.model_overrides[f"sliding_attention+{name}@2"]["head_dim"] = d
    return
  if variant in _MIX_VARIANTS:
    counts = _MIX_VARIANTS[variant]
    _variant(c, f"kv{counts[-1]}")
    c.workdir = f"outputs/mqar_{variant}"
    c.title = (
      f"MQAR kv = {counts[-1]} at T = 128, trained on the kv = "
      f"{' / '.join(map(str, counts))} mixture"
    )
    for task in c.task_configs.values():
      task["train_kwargs"] = {"num_kv_pairs": counts}
    c.models = ("attention@2", *c.models)
    return
  if variant == "context" or variant in _WINDOW_VARIANTS or variant in _PAIRS_VARIANTS:
    window = _WINDOW_VARIANTS.get(variant, _SWA_WINDOW)
    kv = _PAIRS_VARIANTS.get(variant, 8)
    seq_lens = _LONG_SEQ_LENS if variant == "context" else (128,)
    if variant == "context":
      c.title = "MQAR kv = 8 at T = 128 and 192: the sliding-window hybrid at a fixed state"
    elif variant in _WINDOW_VARIANTS:
      c.title = f"MQAR kv = 8 at T = 128: the sliding-window hybrid with a {window}-token window"
    else:
      c.title = f"MQAR kv = {kv} at T = 128: the sliding-window hybrid at a fixed state"
    base = c.task_configs["mqar_kv8"].to_dict()
    base["kwargs"]["num_kv_pairs"] = kv
    c.tasks = tuple(f"mqar_kv{kv}_t{t}" for t in seq_lens)
    c.task_configs = {
      f"mqar_kv{kv}_t{t}": {**base, "kwargs": {**base["kwargs"], "seq_len": t}} for t in seq_lens
    }
    c.mixer_variants = {"ovq_eq": dict(_OVQ_EQ)}
    c.models = (_SWA_HYBRID, *_SWA_CONTROLS)
    c.model_overrides = {spec: {"sliding_window": window} for spec in (_SWA_HYBRID, *_SWA_CONTROLS)}
    return
  if variant == "ablate":
    c.title = "MQAR kv = 8: readings of OVQ at GLA's state budget"
    c.mixer_variants = {name: {**_OVQ_EQ, **flags} for name, flags in _OVQ_READINGS.items()}
    c.models = (
      ("base_conv+gla@2",)
      + tuple(f"base_conv+{name}@2" for name in _OVQ_READINGS)
      + (_SWA_HYBRID, *_SWA_CONTROLS)
    )
    c.model_overrides = {
      spec: {"sliding_window": _SWA_WINDOW} for spec in (_SWA_HYBRID, *_SWA_CONTROLS)
    }
  else:  # "state"
    c.title = "MQAR kv = 8: accuracy against state size, OVQ slots and GLA head dim"
    ovq = {("ovq_eq" if n == 16 else f"ovq_s{n}"): n for n in _STATE_SLOTS}
    gla = {("gla" if d == 64 else f"gla_d{d}"): d for d in _STATE_GLA_DIMS}
    c.mixer_variants = {name: {**_OVQ_EQ, "num_slots": n} for name, n in ovq.items()}
    c.mixer_variants.update({name: {"kind": "gla"} for name in gla if name != "gla"})
    c.models = tuple(f"base_conv+{name}@2" for name in (*ovq, *gla))
    c.model_overrides = {f"base_conv+{name}@2": {"head_dim": d} for name, d in gla.items()}


def get_config(scale: str = "cpu") -> ml_collections.ConfigDict:
  """`scale`: "cpu" (default), "quick", "zoology", or an OVQ sweep on the cpu scale at kv = 8:
  "ablate" (GLA and OVQ at GLA's state budget under each reading of the paper, and the
  sliding-window hybrid), "state" (OVQ slots 8-64 against GLA head dims of equal state) or
  "context" (the sliding-window hybrid and its controls at T = 128 and 192), "window8" or
  "window32" (the same at T = 128 with an 8- or 32-token window), "kv16" or "kv32" (the same
  at T = 128, window 16, with 16 or 32 key-value pairs), "kv16_state" (kv16 with OVQ of 32 and
  64 slots and GLA of the 64-slot state), "kv16_mix" / "kv32_mix" (kv16 / kv32 trained on
  the kv = 4 / 8 / 16 (/ 32) mixture, full attention added), "kv32_mix_state" (kv32_mix's
  hybrid with 32 and 64 slots, 1200 steps), "hybrid" (kv16_mix for 1200
  steps: attention, the OVQ hybrid, the window then GLA; "hybrid_quick" at tiny sizes)."""
  variant = scale if scale in _VARIANTS else None
  if variant is not None:
    scale = "cpu"
  if scale not in _SCALES:
    raise ValueError(
      f"unknown MQAR scale {scale!r}; choose one of {sorted(_SCALES) + list(_VARIANTS)}"
    )
  s = _SCALES[scale]
  c = ml_collections.ConfigDict()
  c.title = f"MQAR (Zoology recipe, {scale} scale)"
  c.workdir = "outputs/mqar"
  c.seeds = (0, 1, 2)
  c.resume = True  # Reuse finished runs in <workdir>/runs/ whose config matches.
  c.threshold = 0.9
  c.models = ("attention@2", "base_conv+gla@2", "base_conv+ovq_eq@2")
  # Equal-state OVQ (see the docstring); registered by reasoning_jax.train.recall.
  c.mixer_variants = {"ovq_eq": {"kind": "ovq", "num_slots": 16, "chunk_size": 16}}
  c.momentum_variants = {}
  c.tasks = tuple(f"mqar_kv{kv}" for kv in s["kv"])
  c.task_configs = {
    f"mqar_kv{kv}": {
      "generator": "mqar",
      "num_train": 20000,
      "num_test": s["num_test"],
      "loss_on": "all",  # MQAR labels only the query positions (Zoology).
      "kwargs": {
        "vocab_size": s["vocab_size"],
        "seq_len": s["seq_len"],
        "num_kv_pairs": kv,
        "power_a": 0.01,
        "random_non_queries": True,
      },
    }
    for kv in s["kv"]
  }
  if scale == "quick":
    c.workdir = "outputs/mqar_quick"
    c.seeds = (0, 1)
    for task in c.task_configs.values():
      task.num_train = 64
  c.model = {
    "preset": "tiny-llama",
    "hidden_size": 128,
    "num_heads": 2,
    "ffn": "swiglu",
    "overrides": {
      "rope_scaling": None,
      "rope_theta": 10000.0,
      "tie_word_embeddings": False,
      "intermediate_size": 256,
    },
  }
  c.train = {
    "batch_size": 64,
    "num_steps": s["num_steps"],
    "learning_rate": s["learning_rate"],
    "warmup_steps": 50,
    "weight_decay": 0.1,
    "grad_clip": 1.0,
    "b1": 0.9,
    "b2": 0.98,
    "final_lr_fraction": 0.1,
    "eval_every": s["eval_every"],
    "eval_batch_size": 500,
  }
  c.model_overrides = {}  # spec -> ModelConfig fields for that model only
  c.notes = "Chance: 2 / V (uniform over the V/2 value ids)."
  if variant is not None:
    _variant(c, variant)
  if scale == "quick" or variant == "hybrid_quick":
    c.model.update(hidden_size=32, num_heads=2)
    c.model.overrides.intermediate_size = 64
    c.train.update(batch_size=8, eval_batch_size=32, warmup_steps=2)
  return c
