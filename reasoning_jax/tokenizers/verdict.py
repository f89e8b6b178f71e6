"""Verdict tokens of a judge model: the single token a word adds after the text it follows.

A judge reads a prompt and its next token is the verdict ("Yes" / "No", "True" / "False"). In
BPE vocabularies "True" and " True" are different tokens, and which one the judge emits depends
on the text before it, so a verdict word is resolved in its context: `encode(context + word)`
must be `encode(context)` plus exactly one token, which is the verdict id. A word that spans
several tokens, or merges with the end of the context, is a `JudgeError` that names the
argument and says how to fix the template.

Shared by the rooms that run judges: `credit` (Grad2Reward's rubric judge, arXiv 2602.01791)
and `routing` (the R2-Bench judge, arXiv 2602.02823).

  >>> verdict_token_id(tokenizer, " Yes", context="Verdict:", argument="positive")
"""

from __future__ import annotations

__all__ = ["JudgeError", "verdict_token_id"]


class JudgeError(ValueError):
  """Bad judge input; the message names the argument."""


def verdict_token_id(tokenizer, word: str, *, context: str = "", argument: str = "word") -> int:
  """The single token `word` adds after `context`; `JudgeError` naming `argument` when it is
  not exactly one token, or when it merges with the end of `context`."""
  if not isinstance(word, str) or not word:
    raise JudgeError(f"{argument} must be a non-empty string, got {word!r}")
  base = list(tokenizer.encode(context)) if context else []
  full = list(tokenizer.encode(context + word))
  extra = full[len(base) :]
  if full[: len(base)] != base:
    raise JudgeError(
      f"{argument}={word!r} merges with the end of the template ({context[-12:]!r}) into "
      f"other tokens; move the shared whitespace into the verdict word (e.g. a template "
      f"ending 'Verdict:' with {' ' + word.strip()!r})"
    )
  if len(extra) != 1:
    raise JudgeError(
      f"{argument}={word!r} tokenizes to {len(extra)} tokens {extra} after the template; a "
      "verdict must be a single token of the judge's vocabulary (e.g. 'True' vs ' True', or "
      "single-character words such as 'Y'/'N' for a byte tokenizer)"
    )
  return int(extra[0])
