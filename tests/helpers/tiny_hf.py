r"""Tiny random Hugging Face checkpoints with a trained tokenizer and a chat template.

`write_tiny_checkpoint(directory, family)` writes what a real Qwen3 / Llama folder holds, at
toy size: config.json + model.safetensors (random weights, by `transformers`),
tokenizer.json (a byte-level BPE trained here with `tokenizers` on GSM8K-like text),
tokenizer_config.json with a ChatML-style jinja template (honouring `enable_thinking`) and
generation_config.json (two eos ids and sampling defaults). Needs the `hf` extra.

  python -m tests.helpers.tiny_hf /tmp/tiny_qwen3 [qwen3|llama]
"""

import json
import os
import random
import sys

from reasoning_jax.tokenizers.bpe import CHATML_TEMPLATE

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "fixtures")
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>"]
# ChatML (honouring `enable_thinking`) after the bos token, when the tokenizer has one.
CHAT_TEMPLATE = (
  "{% if bos_token is defined and bos_token %}{{ bos_token }}{% endif %}" + CHATML_TEMPLATE
)


def corpus(n: int = 300, seed: int = 0) -> list[str]:
  """GSM8K-like questions and solutions, plus the fixture files and the instruction."""
  rng = random.Random(seed)
  names, items = ["Tom", "Lena", "Sam", "Ava", "Omar"], ["apples", "pages", "eggs", "coins"]
  texts = []
  for _ in range(n):
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    who, what = rng.choice(names), rng.choice(items)
    texts.append(f"{who} has {a} {what} and gets {b} more. How many {what} does {who} have?")
    texts.append(f"{who} has {a} + {b} = <<{a}+{b}={a + b}>>{a + b} {what}.\n#### {a + b}")
    texts.append(f"The final answer is \\boxed{{{a + b}}}.")
  for name in ("train.jsonl", "test.jsonl"):
    with open(os.path.join(FIXTURES, "gsm8k", name)) as f:
      for line in f:
        texts.extend(json.loads(line).values())
  texts.append("Please reason step by step, and put your final answer within \\boxed{}.")
  texts.append("<think>\n\n</think>\n\n")
  return texts


def train_tokenizer(vocab_size: int = 400, extra: tuple[str, ...] = ()):
  """A byte-level BPE trained on `corpus()` plus `extra` texts."""
  from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(
    vocab_size=vocab_size,
    special_tokens=SPECIAL,
    initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    show_progress=False,
  )
  tok.train_from_iterator(corpus() + list(extra), trainer=trainer)
  return tok


def write_tiny_checkpoint(directory: str, family: str = "qwen3", *, vocab_size: int = 512, seed=0):
  """Writes a tiny random `family` ("qwen3" | "llama") checkpoint folder; returns it."""
  import torch
  import transformers

  os.makedirs(directory, exist_ok=True)
  tok = train_tokenizer()
  tok.save(os.path.join(directory, "tokenizer.json"))
  ids = {t: tok.token_to_id(t) for t in SPECIAL}
  common = dict(
    vocab_size=vocab_size,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    max_position_embeddings=512,
    tie_word_embeddings=False,
    eos_token_id=ids["<|im_end|>"],
    pad_token_id=ids["<|endoftext|>"],
  )
  if family == "qwen3":
    config = transformers.Qwen3Config(**common, head_dim=16)
  elif family == "llama":
    config = transformers.LlamaConfig(**common, bos_token_id=ids["<|begin_of_text|>"])
  else:
    raise ValueError(family)
  torch.manual_seed(seed)
  model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
  model.save_pretrained(directory)
  tok_config = {
    "eos_token": "<|im_end|>",
    "pad_token": "<|endoftext|>",
    "bos_token": "<|begin_of_text|>" if family == "llama" else None,
    "chat_template": CHAT_TEMPLATE,
  }
  with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
    json.dump(tok_config, f, indent=1)
  generation = {
    "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]],
    "do_sample": True,
    "temperature": 0.7,
    "top_p": 0.9,
    "top_k": 20,
  }
  with open(os.path.join(directory, "generation_config.json"), "w") as f:
    json.dump(generation, f, indent=1)
  return directory


if __name__ == "__main__":
  print(write_tiny_checkpoint(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "qwen3"))
