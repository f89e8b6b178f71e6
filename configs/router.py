r"""Config for `python -m experiments.router`: R2-Router (LLM x output budget) vs its baselines.

"R2-Router: A New Paradigm for LLM Routing with Reasoning" (Xue, Lou, Xing, Huang,
arXiv:2602.02823, ICML 2026); RouteLLM (Ong et al., arXiv:2406.18665) for the binary router
and APGR / CPT; deferral curves, AUDC and QNC from Jitkrittum et al. (arXiv:2502.08773).
`shared/methods/inference.md` sections 5-6.

  python -m experiments.router                                # CPU scale, about 7 min (5 of them training the pool once)
  python -m experiments.router --config=configs/router.py:quick   # end to end in 30-60 s
  python -m experiments.router --config.pool.hf_dirs='("/m/Qwen2.5-0.5B-Instruct",)'
  python -m experiments.router --config.unlimited=True   # + the no-instruction "default" option
  python -m experiments.router --config.judge.pool_model=large   # + a judge model's grades

The pool: three `tiny-qwen3` models of different sizes ("small" 1 layer x 32, "medium" 2 x 64,
"large" 4 x 128) trained here once with the SFT trainer (`evaluate.trained_model.train_or_load`,
`configs/sft_arith.py`: byte tokenizer, compact worked solutions) on synthetic arithmetic
("easy": 1-2 digit operands, "+" and "-", two operands), plus any local HF folders in
`config.pool.hf_dirs`. The table: every pool model answers `config.num_queries` held-out
questions at every budget of `config.budgets` (greedy, capped at the budget), graded by
`math_exact`, cost = measured seconds (prefill seconds per prompt token x prompt tokens +
decode seconds per generated token x generated tokens). Query families (the OOD split): the
operator and the longest operand's digits, "add1", "add2", "sub1", "sub2".

DEVIATIONS from the paper: a pool of 3 tiny arithmetic models (about 24k, 0.1M and 0.8M
parameters, 600 SFT steps each) instead of 15 LLMs of 0.6B-235B; budgets (8, 12, 16, 24, 32,
48) bytes (= tokens of the byte tokenizer) instead of (10 .. 4000) tokens: the worked solutions
are 15-35 bytes, so 48 plays the role of R2-Bench's "default" (no cap reached) and 8 the role
of its 10-token budget (almost no answer fits); the judge is the exact-match verifier `math_exact` (0/1) instead of
Qwen3-80B scoring [0, 1]; prices are measured CPU seconds per token instead of OpenRouter
dollars. The models were never trained on a length instruction, so by default none is given
(`config.instruction = ""`; the budget is enforced by truncation only, the paper's regime of
"models under 4B comply poorly"); set it (e.g. to `routing.LENGTH_INSTRUCTION`) for a pool of
instruction-tuned HF folders. The query encoder is the pool's largest model mean-pooled (the
paper: Qwen3-Embedding-0.6B); `config.encoder_hf_dir` names another one.

`config.unlimited = True` adds the released code's "unlimited" option: the bench's
no-instruction "default" column (shards `bench/shards/<model>__default.jsonl`), capped at
`config.default_cap` (None: the largest budget, 48). With no instruction at all
(`config.instruction = ""`) that column holds the same greedy answers as the largest budget's;
what changes is the router's side: the option is costed at a ridge prediction of its output
length (`min(T_hat, cap)` tokens) instead of the whole budget, as in the released code.
"""

import os
import sys

import ml_collections
from ml_collections import config_dict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import sft_arith  # noqa: E402

_VARIANTS = ("", "quick")


def _member(hidden, layers, heads, kv_heads, *, num_steps, batch_size):
  c = sft_arith.sized(hidden, layers, heads, kv_heads, num_steps=num_steps, batch_size=batch_size)
  c.task_config = "easy"
  c.task_overrides = {"num_train": 20000, "num_test": 512, "ops": ("+", "-"), "style": "compact"}
  c.seq_len = 64
  c.eval_examples, c.eval_max_new_tokens = 64, 48
  return c


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  if variant not in _VARIANTS:
    raise ValueError(f"unknown router variant {variant!r}; choose one of {_VARIANTS}")
  c = ml_collections.ConfigDict()
  c.workdir = "outputs/router" if not variant else f"outputs/router_{variant}"
  # The pool: SFT configs trained once under <workdir>/pool/<name> (smallest first), and any
  # local HF folders (their names: the folders' base names).
  c.pool = ml_collections.ConfigDict()
  c.pool.models = ml_collections.ConfigDict(
    {
      "small": _member(32, 1, 2, 1, num_steps=600, batch_size=32),
      "medium": _member(64, 2, 2, 1, num_steps=600, batch_size=32),
      "large": _member(128, 4, 4, 2, num_steps=600, batch_size=32),
    }
  )
  c.pool.order = ("small", "medium", "large")
  c.pool.hf_dirs = ()
  c.pool.tokenizer = ""  # For hf_dirs: "" (the folders' own) or "byte".
  # The table.
  c.num_queries = 300  # Held-out questions of the task's test split.
  c.budgets = (8, 12, 16, 24, 32, 48)
  c.instruction = ""  # "": none (truncation only); else a template with a {budget} field.
  c.verifier = "math_exact"
  # The released code's "unlimited" option (RouterConfig.unlimited): every model also answers
  # with no instruction, capped at default_cap tokens (None: the largest budget, which plays
  # R2-Bench's "default" here), and R2-Router may route to that answer. An existing bench/
  # gains the column without regenerating the budget shards.
  c.unlimited = False
  c.default_cap = config_dict.placeholder(int)
  # Cost unit: "measured" (seconds per prompt / generated token, from the table's own timings)
  # or "flops" (2 x matmul parameters per token, `evaluate.speculative.pair.per_token_flops`).
  c.price = "measured"
  # Realised cost: "generated" (the tokens each answer used; a model that stops before its
  # budget is billed less) or "budget" (every answer billed its whole budget, the paper's
  # C_M(b) = b price_out taken as the bill: a sensitivity check, not the default).
  c.bill = "generated"
  c.bench_batch_size = 32
  # A judge model grading every table cell beside the verifier (R2-Bench's judge LLM):
  # pool_model names a trained pool member, hf_dir a local HF folder; both "": off. Its scores
  # are computed from the stored completions (an existing bench gains them without
  # regenerating) and results.md reports its agreement with the verifier (Pearson, accuracy at
  # 0.5). quality_source: "verifier" (exact here: the ground truth) or "judge" (route on, and
  # measure in, the judge's scores, as R2-Bench does). The verdict words follow the template's
  # last character and must be one token each there ("Y" / "N" for the pool's byte tokenizer;
  # e.g. " Yes" / " No" for a BPE judge).
  c.judge = ml_collections.ConfigDict()
  c.judge.pool_model = ""
  c.judge.hf_dir = ""
  c.judge.template = (
    "Question: {question}\nReference answer: {answer}\nResponse: {response}\n"
    "Is the response correct? Answer Y or N.\nVerdict:"
  )
  c.judge.positive = "Y"
  c.judge.negative = "N"
  c.judge.chat = False
  c.judge.batch_size = 32
  c.judge.quality_source = "verifier"
  c.encoder_hf_dir = ""  # "": the pool's largest trained model, mean-pooled.
  # Evaluation.
  c.seeds = (0, 1, 2, 3, 4)  # One random train/test split per seed.
  c.test_fraction = 0.3
  c.heads = ("ridge", "mlp")  # R2-Router head kinds evaluated.
  c.ridge_alpha = 10.0
  c.mlp_hidden = (64, 32)
  c.mlp_epochs = 100
  c.mlp_learning_rate = 1e-3
  c.num_lambdas = 201
  c.anchor_counts = (1, 2, 3, 4, 6)  # K-anchor ablation (ridge heads).
  c.ood_test_families = ("sub1", "sub2")  # Train on addition, test on subtraction.
  c.apgr_points = 10
  c.plot = True
  if variant == "quick":
    for name, hidden in (("small", 16), ("medium", 24), ("large", 32)):
      m = c.pool.models[name]
      m.model_overrides = dict(
        m.model_overrides,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_layers=1,
        num_heads=1,
        num_kv_heads=1,
        head_dim=16,
      )
      m.task_overrides = dict(m.task_overrides, num_train=256, num_test=64)
      m.num_steps, m.batch_size = 10, 8
      m.log_every = m.eval_every = m.checkpoint_every = 10
      m.eval_examples, m.eval_max_new_tokens = 4, 8
    c.num_queries = 40
    c.budgets = (4, 8, 16)
    c.bench_batch_size = 20
    c.seeds = (0, 1)
    c.heads = ("ridge", "mlp")
    c.mlp_epochs = 5
    c.num_lambdas = 21
    c.anchor_counts = (1, 3)
  return c
