"""The integer "tokenizer" the tunix comparison scripts hand to tunix (no reasoning_jax import).

Prompts travel as whitespace-separated token ids, which is what tunix's TokenizerAdapter
accepts from a custom tokenizer; `benchmarks/tunix_grpo.py` and `benchmarks/tunix_generate.py`
(run under a tunix environment) share it.
"""


class IntTokenizer:
  """Whitespace-separated integer ids, with the given special ids and no BOS."""

  def __init__(self, *, eos_id: int, pad_id: int):
    self._eos_id, self._pad_id = eos_id, pad_id

  def encode(self, text, **_):
    return [int(t) for t in text.split()]

  def decode(self, ids, **_):
    return " ".join(str(int(i)) for i in ids)

  def bos_id(self):
    return None  # No BOS: prompts stay exactly prompt-len tokens.

  def eos_id(self):
    return self._eos_id

  def pad_id(self):
    return self._pad_id
