"""Config for `python -m experiments.speculative`: speculative decoding on a draft/target pair.

  python -m experiments.speculative                                   # trains the pair once
  python -m experiments.speculative --config=configs/speculative.py:quick
  python -m experiments.speculative --config.target_hf_dir=/m/Qwen2.5-7B \
      --config.draft_hf_dir=/m/Qwen2.5-0.5B --config.target.task=gsm8k \
      --config.target.manual_dir=/data/gsm8k --config.max_new_tokens=256

The pair (default): two `tiny-qwen3` models trained from scratch with the SFT trainer on the
main job's task (synthetic arithmetic, compact worked solutions, byte tokenizer; clean
demonstrations): a target of 4 layers at width 192 and a draft of 2 layers at width 64, about
15x fewer FLOPs per token. `config.target` / `config.draft` are ordinary SFT configs
(`configs/sft_arith.py`); their workdirs default to `<workdir>/pair/<role>`, where each is
trained once and reused. Two HF folders (`target_hf_dir` and `draft_hf_dir`, with `tokenizer`
"" for the folders' own, "byte" for folders exported from models trained here) replace the
pair; the prompts still come from `config.target`'s task.

Variants (`--config=configs/speculative.py:<variant>`): "" (the full experiment with the
SemanticSpec rows, about 10 min on 2 busy CPU cores when the pair is reused: probes 3 min,
decoding 6 min; training the pair adds about 4 min); "latency" (one prompt per call with a
4-layer width-384 target, 7M parameters = 28 MB, about the L3 cache of the 2-core machine, so a decode step leans towards reading weights, the regime speculative
decoding is for); "quick" (tiny models and budgets, 2 seeds: the pipeline end to end for CI;
its numbers say nothing about the method); "verifier" (the SemanticSpec rows with verifier
probe labels, `config.semantic.label_mode = "verifier"`, on the default variant's pair).

Decoders: `config.decoders` names rows of `reasoning_jax.evaluate.speculative.DECODERS`:
"target" (plain `generate`, the baseline) and "spec@k" (token-level speculative sampling with
k drafts a target pass) and SemanticSpec's step-level rows, "semantic@<tau_min>" (the top-2
fast path on) and "semantic_nofast@<tau_min>" (off), whose probes are trained once on the
task's training split under `<workdir>/probes` (options in `config.semantic`).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import sft_arith  # noqa: E402

_VARIANTS = ("", "quick", "latency", "verifier")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  if variant not in _VARIANTS:
    raise ValueError(f"unknown speculative variant {variant!r}; choose one of {_VARIANTS}")
  c = ml_collections.ConfigDict()
  c.workdir = "outputs/speculative"
  c.seeds = (0, 1, 2)  # Each seed: its own held-out prompts and sampling key.
  c.decoders = ("target", "spec@2", "spec@4", "spec@8")
  c.temperatures = (0.0, 1.0)  # Greedy (exactness checked) and sampled.
  c.batch_size = 32  # Held-out prompts per seed, decoded as one batch.
  c.max_prompt_len = 32
  c.max_new_tokens = 40
  c.timing_repeats = 3
  c.accuracy_samples = 8  # Sampled rows: draws per prompt for the accuracy (untimed extras).
  c.plot = True
  # The pair trained here (SFT from scratch, the main job's task and tokenizer).
  c.target = sft_arith.sized(192, 4, 6, 2, num_steps=300, batch_size=32)
  c.draft = sft_arith.sized(64, 2, 2, 1, num_steps=300, batch_size=32)
  c.export_hf = True  # Also write <workdir>/pair/{target,draft}_hf (to_hf).
  # Or two local HF folders (both or neither); tokenizer: "" (the folders'), "byte" or a path.
  c.target_hf_dir = ""
  c.draft_hf_dir = ""
  c.tokenizer = ""
  c.decode_batch = 0  # Rows per decoder call (0: the whole batch in one call).
  # SemanticSpec rows ("semantic@<tau_min>": top-2 fast path on; "semantic_nofast@<tau_min>":
  # off) and their probes, built once under <workdir>/probes (evaluate/speculative/probes.py).
  c.decoders += ("semantic@0", "semantic@0.5", "semantic@0.8", "semantic_nofast@0", "draft")
  c.semantic = ml_collections.ConfigDict()
  c.semantic.boundary = "comma_newline"  # A step per column sum ("newline": a step per line).
  c.semantic.label_mode = "cluster"  # Or "verifier" (spec 2.2 step 3; the "verifier" variant).
  c.semantic.num_continuations = 4  # Verifier labels: target continuations scored per step.
  c.semantic.num_samples = 20  # Sampled next steps per prefix and model (spec 20).
  c.semantic.probe_prompts = 48  # Training-split prompts whose target traces give prefixes.
  c.semantic.max_step_tokens = 16  # Longest step (a column sum is at most ~12 bytes).
  # Probe MLPs narrower than the paper's 2048/1024 (TARGET_HIDDEN / DRAFT_HIDDEN): the states
  # are 192 (target) and 64 (draft) wide and there are a few thousand examples.
  c.semantic.target_hidden = (256, 128, 64)
  c.semantic.draft_hidden = (128, 64, 32)
  c.semantic.max_epochs, c.semantic.patience, c.semantic.seed = 100, 10, 0
  c.semantic.top_p = 1.0  # As the target row (spec 0.95).
  c.semantic.bonus_temperature = 0.1  # Spec 0.1.
  c.semantic.positions = 6  # Step positions in the acceptance-by-position curve.
  if variant == "latency":
    # Batch-1 decoding with a target whose weights (28 MB) fill the CPU's L3 cache, so a decode
    # step leans towards reading weights and a verify pass of k + 1 tokens costs less than k + 1
    # steps (the regime speculative decoding is for).
    c.workdir = "outputs/speculative_latency"
    c.target = sft_arith.sized(384, 4, 6, 2, num_steps=200, batch_size=32)
    c.target.model_overrides = dict(c.target.model_overrides, head_dim=64)
    c.decode_batch = 1
    c.decoders = ("target", "spec@2", "spec@4", "spec@8")  # Token-level only.
    c.timing_repeats, c.accuracy_samples = 2, 4
  if variant == "verifier":
    # SemanticSpec with verifier labels: a step's label is the share of its target
    # continuations that reach the right answer, not how often samples agree. Same pair as
    # the default variant (trained there once and reused), own probes and table.
    c.workdir = "outputs/speculative_verifier"
    c.target.workdir = "outputs/speculative/pair/target"
    c.draft.workdir = "outputs/speculative/pair/draft"
    c.semantic.label_mode = "verifier"
    c.decoders = ("target", "semantic@0", "semantic@0.5", "semantic_nofast@0", "draft")
  if variant == "quick":
    c.workdir = "outputs/speculative_quick"
    c.seeds = (0, 1)
    c.batch_size, c.max_new_tokens, c.timing_repeats, c.accuracy_samples = 8, 16, 1, 2
    c.decoders = ("target", "spec@2", "spec@4", "semantic@0")
    c.semantic.probe_prompts, c.semantic.num_samples, c.semantic.max_epochs = 4, 4, 5
    for member, hidden, layers in ((c.target, 48, 2), (c.draft, 32, 1)):
      member.model_overrides = dict(
        member.model_overrides,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_layers=layers,
        num_heads=2,
        num_kv_heads=1,
        head_dim=16,
      )
      member.task_overrides = dict(member.task_overrides, num_train=256, num_test=16)
      member.seq_len, member.batch_size, member.num_steps = 48, 8, 20
      member.log_every = member.eval_every = member.checkpoint_every = 20
      member.eval_examples, member.eval_max_new_tokens = 8, 16
  return c
