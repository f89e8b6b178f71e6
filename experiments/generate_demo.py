r"""Quickstart main job: train a tiny transformer on a toy language, then decode with a KV cache.

Until the RL trainer lands this is the project's embedded-default demo (no
downloads): a tiny Llama/Qwen-style model learns to continue the alphabet
("defg" -> "hijklmnop...") over the byte tokenizer, then `generate` decodes
held-out prompts with a preallocated KV cache. It reports continuation accuracy
before and after training, decode speed, and writes a loss curve PNG and a
metrics JSON to `--config.workdir`.

  python -m experiments.generate_demo
  python -m experiments.generate_demo --config.preset=tiny-llama --config.train_steps=100
"""

import json
import os
import string
import time

from absl import app, logging
from ml_collections import config_flags

_DEFAULT_CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "generate_demo.py")
_CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT_CONFIG, "Experiment config.")


def alphabet_batch(rng, batch_size, length):
  letters = string.ascii_lowercase
  starts = rng.integers(0, 26, size=batch_size)
  return ["".join(letters[(s + i) % 26] for i in range(length)) for s in starts]


def main(argv):
  del argv
  import jax
  import jax.numpy as jnp
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import numpy as np
  import optax
  from flax import nnx
  from tqdm import tqdm

  from reasoning_jax.generate import generate
  from reasoning_jax.models import Transformer, count_params, get_preset
  from reasoning_jax.tokenizers import ByteTokenizer

  config = _CONFIG.value
  os.makedirs(config.workdir, exist_ok=True)
  tokenizer = ByteTokenizer()
  # The preset's architecture with the byte tokenizer's vocabulary (259 ids).
  model_config = get_preset(config.preset, vocab_size=tokenizer.vocab_size)
  model = Transformer(model_config, rngs=nnx.Rngs(config.seed))
  logging.info("preset %s: %s parameters", config.preset, f"{count_params(model):,}")
  rng = np.random.default_rng(config.seed)

  eval_texts = alphabet_batch(
    np.random.default_rng(config.seed + 1),
    config.num_eval_prompts,
    config.prompt_len + config.max_new_tokens,
  )

  def evaluate(model, key):
    prompts, lengths = tokenizer.encode_batch([t[: config.prompt_len] for t in eval_texts])
    start = time.perf_counter()
    out = generate(
      model,
      jnp.asarray(prompts),
      jnp.asarray(lengths),
      max_new_tokens=config.max_new_tokens,
      temperature=config.temperature,
      top_k=config.top_k or None,
      top_p=config.top_p,
      key=key,
    )
    tokens = np.asarray(jax.block_until_ready(out.tokens))
    seconds = time.perf_counter() - start
    completions = tokenizer.decode_batch(tokens, np.asarray(out.lengths))
    targets = [t[config.prompt_len :] for t in eval_texts]
    accuracy = float(np.mean([c == t for c, t in zip(completions, targets)]))
    return accuracy, completions, tokens.size / seconds

  key = jax.random.key(config.seed)
  acc_before, _, _ = evaluate(model, key)

  optimizer = nnx.Optimizer(model, optax.adamw(config.learning_rate), wrt=nnx.Param)

  @nnx.jit
  def train_step(model, optimizer, tokens):
    def loss_fn(model):
      logits = model(tokens[:, :-1])
      return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss

  losses = []
  for _ in tqdm(range(config.train_steps), desc="train", mininterval=2.0):
    ids, _ = tokenizer.encode_batch(alphabet_batch(rng, config.batch_size, config.seq_len))
    losses.append(float(train_step(model, optimizer, jnp.asarray(ids))))

  evaluate(model, key)  # Compile once so the timing below is decode speed only.
  acc_after, completions, tokens_per_s = evaluate(model, key)
  for text, completion in list(zip(eval_texts, completions))[:4]:
    logging.info("prompt %r -> %r", text[: config.prompt_len], completion)
  metrics = {
    "preset": config.preset,
    "params": count_params(model),
    "final_loss": losses[-1],
    "accuracy_before": acc_before,
    "accuracy_after": acc_after,
    "decode_tokens_per_s": tokens_per_s,
  }
  print(json.dumps(metrics, indent=2))
  with open(os.path.join(config.workdir, "metrics.json"), "w") as f:
    json.dump(metrics, f, indent=2)
  fig, ax = plt.subplots(figsize=(5, 3))
  ax.plot(losses)
  ax.set(
    xlabel="step",
    ylabel="train loss",
    yscale="log",
    title=f"{config.preset}: continuation accuracy {acc_before:.0%} -> {acc_after:.0%}",
  )
  fig.tight_layout()
  fig.savefig(os.path.join(config.workdir, "loss.png"), dpi=100)
  logging.info("wrote %s", config.workdir)


if __name__ == "__main__":
  app.run(main)
