"""A whitespace tokenizer and scripted controllers for the InfMem tests."""

from __future__ import annotations

import re

from reasoning_jax.agents.infmem import format_tool_call


class WordTokenizer:
  """Whitespace-separated pieces, ids assigned on first sight (0 = pad, 1 = eos)."""

  pad_id, eos_id, bos_id = 0, 1, None

  def __init__(self):
    self.vocab = {"<pad>": 0, "<eos>": 1}
    self.words = ["<pad>", "<eos>"]

  @property
  def vocab_size(self) -> int:
    return len(self.words)

  def encode(self, text: str) -> list[int]:
    out = []
    for w in re.findall(r"\S+", text):
      if w not in self.vocab:
        self.vocab[w] = len(self.words)
        self.words.append(w)
      out.append(self.vocab[w])
    return out

  def decode(self, ids) -> str:
    return " ".join(self.words[int(i)] for i in ids if int(i) > 1)


def document(num_chunks: int, chunk_tokens: int, *, marker: str = "w") -> str:
  """A document of exactly `num_chunks * chunk_tokens` whitespace tokens, chunk-tagged."""
  return " ".join(f"{marker}{c}x{i % 7}" for c in range(num_chunks) for i in range(chunk_tokens))


def stopper(call) -> str:
  return {"prethink": "STOP", "write": "note", "answer": "Therefore, the answer is x"}[call.kind]


def searcher(call) -> str:
  if call.kind == "prethink":
    return format_tool_call(f"w{(call.step + 1) % 3}x1", 4)
  if call.kind == "write":
    return f"memory after step {call.step}"
  return "Therefore, the answer is x"
