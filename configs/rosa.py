r"""Config for `python -m experiments.rosa`: window vs window + ROSA vs global attention.

"ROSA-Tuning: Enhancing Long-Context Modeling via Suffix Matching", Zheng et al.,
arXiv:2602.02499.

  python -m experiments.rosa                               # CPU scale, 3 seeds
  python -m experiments.rosa --config=configs/rosa.py:quick
  python -m experiments.rosa --config=configs/rosa.py:accelerator   # 4k-16k tokens

Task: long-range copying (`reasoning_jax.data.recall.repeated_tokens` with n in [T/4, T/2]):
every scored token repeats one n >= T/4 positions back, beyond the window. The loss is on the
copied span (`loss_on="copy"`; "all" trains on every next token).

Arms (`config.models`, "name=spec", specs as in `reasoning_jax.train.recall`): "global"
(attention in both layers), "window" (layer 0 global, layer 1 sliding window: the paper's
FIRST_GLOBAL_LAYERS = 1), "window+rosa" (layer 1 the "rosa" mixer, the released code's
independent Xavier init of W_q^R and W_k^R; the verdict arm), "window+rosa (shared q/k init)"
("rosa_shared_qk": W_k^R starts equal to W_q^R, our ablation: a token's query and key
symbols agree at init, so the automaton matches repeated text from step 0); and
"rosa-tuned window": stage A on the trained window model (branch only, backbone frozen; the
branch is `config.tune_mixer`).

DEVIATIONS (CPU scale, default variant): the paper tunes Qwen3-1.7B at 16k tokens with a 2k
window on ~1.5B tokens; here 2-layer width-64 attention-only models (tiny-llama blocks, RoPE
theta 1e4, untied head: the toy models that learn induction within a CPU budget; a probe with
SwiGLU blocks and Qwen3's theta 1e6 left even the global model at chance after 1500 steps at
T = 256) train from scratch at T = 256 with a 32-token window (the paper's 1/8 window-to-
length ratio) and are evaluated at 256 .. 2048 tokens; 1000 steps of batch 16 (ROSA-tuning
500). In a probe at T = 128 / window 16 / 600 steps: global 0.995, window 0.116,
window + ROSA (shared init) 0.344 at T = 128 and 0.321 at T = 256, where global fell to 0.326.
"accelerator": T = 4096 / window 512, evaluated up to 16k, width 256, 4000 steps.
"quick": the pipeline end to end in about a minute; its numbers say nothing.
"""

import ml_collections

_VARIANTS = ("", "quick", "accelerator")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  if variant not in _VARIANTS:
    raise ValueError(f"unknown rosa variant {variant!r}; choose one of {_VARIANTS}")
  c = ml_collections.ConfigDict()
  c.workdir = "outputs/rosa" if not variant else f"outputs/rosa_{variant}"
  c.seeds = (0, 1, 2)
  c.vocab_size = 64
  c.train_len = 256
  c.window = 32
  c.eval_lens = (256, 512, 1024, 2048)
  c.num_train = 20000
  c.num_test = 64
  c.eval_batch_size = 16
  c.loss_on = "copy"
  c.models = (
    "global=attention@2",
    "window=attention+sliding_attention@2",
    "window+rosa=attention+rosa@2",
    "window+rosa (shared q/k init)=attention+rosa_shared_qk@2",
  )
  c.verdict_arm = "window+rosa"
  c.tune_from = "window"
  c.tune_mixer = "rosa_shared_qk"
  # A local Hugging Face folder (Qwen / Llama) to ROSA-tune instead of the window model trained
  # here: its layers >= 1 become window + ROSA, only the branch trains.
  c.tune_hf_dir = ""
  c.model = ml_collections.ConfigDict(
    {
      "preset": "tiny-llama",
      "hidden_size": 64,
      "num_heads": 2,
      "ffn": "none",
      "overrides": {
        "intermediate_size": 128,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
      },
    }
  )
  train = {
    "batch_size": 16,
    "num_steps": 1000,
    "learning_rate": 3e-3,
    "warmup_steps": 100,
    "weight_decay": 0.0,
    "grad_clip": 1.0,
    "log_every": 100,
  }
  c.train = ml_collections.ConfigDict(train)
  c.tune = ml_collections.ConfigDict({**train, "num_steps": 500})
  c.notes = ""
  if variant == "quick":
    c.seeds = (0, 1)
    c.train_len, c.window, c.eval_lens = 64, 8, (64, 128)
    c.num_train, c.num_test, c.eval_batch_size = 64, 4, 4
    c.train.num_steps, c.train.log_every, c.train.warmup_steps, c.train.batch_size = 6, 3, 2, 4
    c.tune.num_steps, c.tune.log_every, c.tune.warmup_steps, c.tune.batch_size = 4, 2, 2, 4
  elif variant == "accelerator":
    c.train_len, c.window, c.eval_lens = 4096, 512, (4096, 8192, 16384)
    c.model.hidden_size = 256
    c.train.num_steps, c.tune.num_steps = 4000, 2000
  return c
