"""Greedy generation throughput: ours vs google-tunix's sampler, tokens checked against HF.

One run writes a random Qwen3 checkpoint with `transformers` (safetensors, fp32; RMSNorm
weights 1 + N(0, 0.1) so their import is exercised) into a temporary folder, draws `--batch`
seeded random prompts of `--prompt-len` ids, and then, on that same checkpoint and those
prompts, greedily decodes `--new-tokens` tokens (no EOS: every row runs the full budget) with

  (a) ours: `reasoning_jax.models.hf.from_hf` + `reasoning_jax.generate.generate`
      (temperature 0); the prefill and the decode loop (the two jitted functions `generate`
      runs) are also timed apart;
  (b) tunix: `benchmarks/tunix_generate.py --serve` under `--tunix-python` (default
      /work/tunix-venv/bin/python when it exists; skipped with a message otherwise): tunix's
      own safetensors loader and vanilla `Sampler`;
  (c) transformers: `generate(do_sample=False, max_new_tokens=N, min_new_tokens=N)` in torch,
      the token reference (its time, `--hf-repeats` calls, is printed for information only).

Compilation is excluded (one warm-up call each). Ours and tunix are then timed in `--repeats`
interleaved rounds (one call each, tunix's through the subprocess's stdin; the order
alternates), so load from other processes on a shared machine hits both alike; the table
gives medians and minima, and the tunix / ours ratio per round.

It also prints the token identity of ours and of tunix against transformers (identical rows,
and the first divergent position per row with the transformers logit margin there, to tell
near-ties from bugs), the greedy margins of the reference (how close its argmax decisions
are) and the largest teacher-forced logit difference between our model and transformers.
With `--profile` (default) it then splits our decode step into transformer body, unembedding
matmul, log-prob bookkeeping and loop overhead, and sets the measured steps of ours and tunix
against the memory-bandwidth floor of a step (the bytes it must read over the read bandwidth
measured in the same run): see benchmarks/decode_profile.py (`profile_decode`, `memory_floor`).

  python benchmarks/generate_vs_tunix.py [--hidden 512 --intermediate 1536 --layers 8 \
      --heads 8 --kv-heads 4 --head-dim 64 --vocab 32000 --init-range 0.05 \
      --batch 8 --prompt-len 32 --new-tokens 128 --repeats 5] [--no-tie-word-embeddings] \
      [--tunix-python PATH] [--no-profile | --profile-steps 32 --profile-repeats 5 \
      --bandwidth-mib 512 --bandwidth-repeats 7] [--keep DIR]

The rope theta defaults to 1e6: tunix 0.1.7's Qwen3 ignores the configured theta and always
uses 1e6 (see benchmarks/tunix_generate.py); with `--rope-theta 10000` its tokens diverge.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_TUNIX_PYTHON = "/work/tunix-venv/bin/python"


def write_checkpoint(directory, args):
  """Writes a random fp32 Qwen3 checkpoint with transformers; returns the HF model (eval)."""
  import torch
  import transformers

  config = transformers.Qwen3Config(
    vocab_size=args.vocab,
    hidden_size=args.hidden,
    intermediate_size=args.intermediate,
    num_hidden_layers=args.layers,
    num_attention_heads=args.heads,
    num_key_value_heads=args.kv_heads,
    head_dim=args.head_dim,
    max_position_embeddings=max(512, args.prompt_len + args.new_tokens),
    rope_theta=args.rope_theta,  # tunix's Qwen3 always uses 1e6, whatever the config says.
    rms_norm_eps=1e-6,
    initializer_range=args.init_range,
    tie_word_embeddings=args.tie_word_embeddings,
    eos_token_id=None,
    pad_token_id=None,
    bos_token_id=None,
  )
  torch.manual_seed(args.seed)
  model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
  with torch.no_grad():  # Non-unit norm weights, so that their import is exercised too.
    for name, param in model.named_parameters():
      if name.endswith("norm.weight"):
        param.copy_(1.0 + args.norm_noise * torch.randn_like(param))
  model.save_pretrained(directory)
  return model.eval()


def run_transformers(model, prompts, args):
  """Greedy reference tokens `[B, N]`, raw logits `[B, N, V]` and timed call seconds."""
  import numpy as np
  import torch

  model.generation_config.eos_token_id = None
  model.generation_config.pad_token_id = 0  # Unused: no row ever finishes early.
  ids = torch.as_tensor(prompts, dtype=torch.long)
  kwargs = dict(
    attention_mask=torch.ones_like(ids),
    do_sample=False,
    max_new_tokens=args.new_tokens,
    min_new_tokens=args.new_tokens,
  )
  with torch.inference_mode():
    start = time.perf_counter()
    out = model.generate(ids, output_logits=True, return_dict_in_generate=True, **kwargs)
    seconds = [time.perf_counter() - start]  # Replaced by the timed calls if there are any.
    tokens = out.sequences[:, ids.shape[1] :].numpy()
    logits = torch.stack(out.logits, dim=1).float().numpy()
    timed = []
    for _ in range(args.hf_repeats):
      start = time.perf_counter()
      again = model.generate(ids, **kwargs)
      timed.append(time.perf_counter() - start)
      if not np.array_equal(again[:, ids.shape[1] :].numpy(), tokens):
        print("warning: transformers' greedy tokens changed between calls", file=sys.stderr)
  return tokens, logits, timed or seconds


class TunixServer:
  """benchmarks/tunix_generate.py --serve under another interpreter: one timed call per run()."""

  def __init__(self, python, directory, prompts, args):
    import jax

    prompts_file = os.path.join(directory, "prompts.json")
    with open(prompts_file, "w") as f:
      json.dump(prompts.tolist(), f)
    backend = os.environ.get("JAX_PLATFORMS", jax.default_backend())
    self.cmd = [
      python,
      os.path.join(REPO, "benchmarks", "tunix_generate.py"),
      "--checkpoint",
      directory,
      "--prompts",
      prompts_file,
      "--new-tokens",
      str(args.new_tokens),
      "--serve",
    ]
    self.stderr = tempfile.TemporaryFile(mode="w+")
    self.proc = subprocess.Popen(
      self.cmd,
      env=dict(os.environ, JAX_PLATFORMS=backend),
      stdin=subprocess.PIPE,
      stdout=subprocess.PIPE,
      stderr=self.stderr,
      text=True,
      cwd=directory,
    )
    self.ready = self._read()  # Loaded and compiled.

  def _read(self):
    for line in self.proc.stdout:
      line = line.strip()
      if line.startswith("{"):
        return json.loads(line)
    self.stderr.seek(0)
    sys.stderr.write(self.stderr.read()[-4000:])
    raise SystemExit(f"tunix run failed (exit {self.proc.wait()}): {' '.join(self.cmd)}")

  def run(self):
    self.proc.stdin.write("run\n")
    self.proc.stdin.flush()
    return self._read()

  def close(self):
    self.proc.stdin.write("quit\n")
    self.proc.stdin.flush()
    summary = self._read()
    self.proc.wait()
    return summary


def measure(directory, prompts, args):
  """Our calls and tunix's calls, interleaved (same machine load for both).

  Round r runs one call of each, ours first on even rounds and tunix first on odd ones, so
  each side follows its own and the other's call equally often. Our prefill and decode are
  timed inside the same `generate` calls, by wrapping (in this process only) the two jitted
  functions `_compiled_fns` hands to `generate` with blocking timers, as
  benchmarks/tunix_generate.py wraps tunix's.

  Returns our model, our tokens, a dict of our per-round seconds (total, prefill, decode) and
  tunix's summary (None when skipped) with its per-round seconds.
  """
  import jax
  import numpy as np

  from reasoning_jax.generate import generate as _  # noqa: F401  (loads the module below)
  from reasoning_jax.models.hf import from_hf

  # The module, not the function of the same name that reasoning_jax.generate re-exports.
  generate_module = sys.modules["reasoning_jax.generate.generate"]

  model = from_hf(directory)
  b, p = prompts.shape
  lengths = np.full((b,), p, np.int32)
  ours = {"total_s": [], "prefill_s": [], "decode_s": []}
  original = generate_module._compiled_fns

  def timed(name, fn):
    def wrapper(*a):
      start = time.perf_counter()
      out = jax.block_until_ready(fn(*a))
      ours[name].append(time.perf_counter() - start)
      return out

    return wrapper

  def timed_compiled_fns(graphdef, settings):
    prefill, decode = original(graphdef, settings)  # lru-cached: compiled once.
    return timed("prefill_s", prefill), timed("decode_s", decode)

  def call():
    start = time.perf_counter()
    out = generate_module.generate(
      model, prompts, lengths, max_new_tokens=args.new_tokens, temperature=0.0
    )
    tokens = np.asarray(out.tokens)  # Device -> host, as tunix's sampler does.
    ours["total_s"].append(time.perf_counter() - start)
    return tokens

  tunix = None
  if args.tunix_python:
    tunix = TunixServer(args.tunix_python, directory, prompts, args)
  else:
    print(
      "tunix: skipped (no --tunix-python and no "
      f"{DEFAULT_TUNIX_PYTHON}; pass the interpreter of an environment with google-tunix)"
    )
  generate_module._compiled_fns = timed_compiled_fns
  try:
    tokens = call()  # Compiles prefill and decode.
    for value in ours.values():
      value.clear()
    for r in range(args.repeats):
      if tunix is not None and r % 2:
        tunix.run()
      again = call()
      assert np.array_equal(again, tokens), "our greedy tokens changed between calls"
      if tunix is not None and not r % 2:
        tunix.run()
  finally:
    generate_module._compiled_fns = original
  summary = None if tunix is None else tunix.close()
  return model, tokens, ours, summary


def compare_tokens(name, tokens, reference, ref_logits):
  """Prints row identity vs the reference and, per divergent row, the reference's margin."""
  import numpy as np

  tokens = np.asarray(tokens)
  same = (tokens == reference).all(axis=1)
  print(f"{name}: {int(same.sum())}/{len(same)} rows identical to transformers")
  first = []
  for row in np.flatnonzero(~same):
    j = int(np.argmax(tokens[row] != reference[row]))
    ref_tok, tok = int(reference[row, j]), int(tokens[row, j])
    logits = ref_logits[row, j]
    top2 = np.sort(logits)[-2:]
    print(
      f"  row {row}: first divergence at new token {j}: transformers {ref_tok}, {name} {tok}; "
      f"transformers logit margin there {logits[ref_tok] - logits[tok]:.3g} "
      f"(top1 - top2 {top2[1] - top2[0]:.3g})"
    )
    first.append((int(row), j))
  return {"rows_identical": int(same.sum()), "first_divergence": first}


def teacher_forced_gap(model, prompts, reference, ref_logits):
  """Max |our logits - transformers' logits| along the reference continuation."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  p = prompts.shape[1]
  seq = jnp.asarray(np.concatenate([prompts, reference[:, :-1]], axis=1), jnp.int32)
  logits = np.asarray(jax.jit(lambda ids: model(ids))(seq))[:, p - 1 :]
  return float(np.abs(logits - ref_logits).max())


def main():
  # benchmarks/ (the script's folder, on sys.path when run as a script).
  from decode_profile import add_arguments, memory_floor, profile_decode

  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--hidden", type=int, default=512)
  parser.add_argument("--intermediate", type=int, default=1536)
  parser.add_argument("--layers", type=int, default=8)
  parser.add_argument("--heads", type=int, default=8)
  parser.add_argument("--kv-heads", type=int, default=4)
  parser.add_argument("--head-dim", type=int, default=64)
  parser.add_argument("--vocab", type=int, default=32000)
  parser.add_argument("--tie-word-embeddings", action=argparse.BooleanOptionalAction, default=True)
  parser.add_argument(
    "--init-range",
    type=float,
    default=0.05,
    help="std of the random weights (HF initializer_range); larger = wider greedy margins",
  )
  parser.add_argument(
    "--rope-theta",
    type=float,
    default=1e6,
    help="keep 1e6 to compare with tunix (its Qwen3 ignores the configured theta)",
  )
  parser.add_argument("--norm-noise", type=float, default=0.1, help="RMSNorm weights 1 + N(0, x)")
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--prompt-len", type=int, default=32)
  parser.add_argument("--new-tokens", type=int, default=128)
  parser.add_argument(
    "--repeats",
    type=int,
    default=5,
    help="timed rounds: one call of ours and one of tunix each, order alternating",
  )
  parser.add_argument(
    "--hf-repeats", type=int, default=1, help="timed transformers calls after the reference one"
  )
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument(
    "--tunix-python",
    default=DEFAULT_TUNIX_PYTHON if os.path.exists(DEFAULT_TUNIX_PYTHON) else "",
    help="interpreter of an environment with google-tunix (empty: skip tunix)",
  )
  parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True)
  add_arguments(parser)  # --profile-steps, --profile-repeats, --bandwidth-mib, ...
  parser.add_argument("--keep", default="", help="write the checkpoint here and keep it")
  args = parser.parse_args()

  sys.path.insert(0, REPO)
  import jax
  import numpy as np
  import torch
  import transformers

  with tempfile.TemporaryDirectory() as tmp:
    directory = args.keep or tmp
    os.makedirs(directory, exist_ok=True)
    hf_model = write_checkpoint(directory, args)
    rng = np.random.default_rng(args.seed)
    prompts = rng.integers(3, args.vocab, (args.batch, args.prompt_len)).astype(np.int32)
    print(
      f"Qwen3 hidden {args.hidden}, intermediate {args.intermediate}, {args.layers} layers, "
      f"{args.heads}/{args.kv_heads} heads x {args.head_dim}, vocab {args.vocab}, tied "
      f"{args.tie_word_embeddings}, init std {args.init_range}, fp32; batch {args.batch}, "
      f"prompt {args.prompt_len}, {args.new_tokens} new tokens, greedy, no EOS; "
      f"backend {jax.default_backend()}, {os.cpu_count()} CPUs; {args.repeats} timed rounds "
      "(ours and tunix, order alternating)",
      flush=True,
    )
    ref_tokens, ref_logits, hf_s = run_transformers(hf_model, prompts, args)
    del hf_model
    model, our_tokens, ours, tunix = measure(directory, prompts, args)

  n_tok = args.batch * args.new_tokens
  med = statistics.median
  ours_total = med(ours["total_s"])
  rows = [
    (
      "ours (reasoning_jax)",
      ours["total_s"],
      med(ours["prefill_s"]),
      med(ours["decode_s"]),
      args.new_tokens - 1,
    )
  ]
  if tunix is not None:
    rows.append(
      (
        tunix["framework"],
        tunix["total_s_per_call"],
        tunix["prefill_s"],
        tunix["decode_s"],
        args.new_tokens,
      )
    )
  rows.append((f"transformers {transformers.__version__} (ref)", hf_s, None, None, None))
  print(
    f"\n{'greedy generate':30s} {'total s':>8} {'min s':>8} {'tok/s':>8} {'prefill s':>9} "
    f"{'decode s':>9} {'ms/step':>8} {'time/ours':>9}"
  )
  for name, totals, prefill, decode, steps in rows:
    total = med(totals)
    pre = f"{prefill:9.4f}" if prefill is not None else f"{'-':>9}"
    dec = f"{decode:9.3f}" if decode is not None else f"{'-':>9}"
    per = f"{decode / steps * 1e3:8.2f}" if decode is not None else f"{'-':>8}"
    print(
      f"{name:30s} {total:8.3f} {min(totals):8.3f} {n_tok / total:8.0f} {pre} {dec} {per} "
      f"{total / ours_total:9.2f}"
    )
  ratio = paired = None
  if tunix is not None:
    ratio = tunix["total_s"] / ours_total
    paired = [t / o for t, o in zip(tunix["total_s_per_call"], ours["total_s"])]
    decode_paired = [
      (t / args.new_tokens) / (o / (args.new_tokens - 1))
      for t, o in zip(tunix["decode_s_per_call"], ours["decode_s"])
    ]
    print(
      f"tunix s / our s = {ratio:.2f} (> 1: ours is faster); per round "
      f"{', '.join(f'{r:.2f}' for r in paired)}; decode ms/step tunix / ours per round "
      f"{', '.join(f'{r:.2f}' for r in decode_paired)}"
    )
  print(
    "total = one whole call, median over rounds (tok/s from it); prefill/decode = the two "
    "jitted functions, medians;\nms/step = decode s / decode forward passes (ours: new - 1 "
    "after the prefill's token; tunix: new, its last one discarded)"
  )

  print()
  margins = np.sort(ref_logits, axis=-1)
  gaps = margins[..., -1] - margins[..., -2]
  gap = teacher_forced_gap(model, prompts, ref_tokens, ref_logits)
  print(
    f"transformers greedy margins (top1 - top2 logit) over {gaps.size} steps: min "
    f"{gaps.min():.3g}, median {np.median(gaps):.3g}; teacher-forced max |our logit - "
    f"transformers logit| = {gap:.3g} ({'<' if 2 * gap < gaps.min() else '>='} min margin / 2)"
  )
  identity = {"ours": compare_tokens("ours", our_tokens, ref_tokens, ref_logits)}
  if tunix is not None:
    identity["tunix"] = compare_tokens("tunix", tunix["tokens"], ref_tokens, ref_logits)
    if tunix.get("rope_theta_ignored"):
      print(
        f"  ({tunix['framework']}'s Qwen3 ignores rope_theta={args.rope_theta:g} and uses "
        "1e6: its tokens are expected to differ)"
      )
  distinct = [len(set(row.tolist())) for row in ref_tokens]
  print(f"distinct tokens per reference row: {distinct}")

  profile = floor = None
  if args.profile:
    profile = profile_decode(model, prompts, args)
    ours_ms = med(ours["decode_s"]) / (args.new_tokens - 1) * 1e3  # As in the table.
    tunix_ms = None if tunix is None else tunix["decode_s"] / args.new_tokens * 1e3
    floor = memory_floor(model, args, ours_ms, tunix_ms)
  print(
    json.dumps(
      {
        "ours": ours,
        "tunix": None
        if tunix is None
        else {
          k: tunix[k]
          for k in (
            "framework",
            "total_s_per_call",
            "prefill_s_per_call",
            "decode_s_per_call",
            "total_s",
          )
        },
        "transformers_s": hf_s,
        "tunix_over_ours": ratio,
        "tunix_over_ours_per_round": paired,
        "identity": identity,
        "min_ref_margin": float(gaps.min()),
        "teacher_forced_max_logit_diff": gap,
        "profile": profile,
        "memory_floor": floor,
        "versions": {
          "jax": jax.__version__,
          "transformers": transformers.__version__,
          "torch": torch.__version__,
        },
      }
    )
  )


if __name__ == "__main__":
  main()
