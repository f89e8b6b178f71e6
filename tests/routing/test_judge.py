"""`ModelJudge`: the score is softmax over the two verdict logits at the next position (checked by
hand on a tiny model), one batched forward equals row-by-row calls, verdict words are resolved in
context ("Yes" vs " Yes" on a real BPE), bad input is named; `judge_agreement` by hand."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
from flax import nnx

from reasoning_jax.models import Transformer, get_preset
from reasoning_jax.routing import JudgeError, ModelJudge, judge_agreement
from reasoning_jax.tokenizers import ByteTokenizer, HFTokenizer, verdict_token_id

TOK = ByteTokenizer()
BYTE = dict(template="Q:{question}\nA:{answer}\nR:{response}\nOK?", positive="Y", negative="N")


def _model(vocab: int = TOK.vocab_size, seed: int = 0):
  cfg = get_preset("tiny-qwen3", vocab_size=vocab, hidden_size=32, intermediate_size=64)
  return Transformer(cfg, rngs=nnx.Rngs(seed))


@pytest.fixture(scope="module")
def bpe():
  """A byte-level BPE where " Yes" and "Yes" are different single tokens (the credit judge's
  "True" vs " True" fixture, with the routing judge's words)."""
  from tests.helpers.tiny_hf import CHAT_TEMPLATE, train_tokenizer

  judged = ("Verdict: Yes", "Verdict: No", "Yes", "No") * 50
  return HFTokenizer(
    train_tokenizer(500, extra=judged), eos_token="<|im_end|>", chat_template=CHAT_TEMPLATE
  )


ROWS = [
  ("1 + 2 = ?", "3", "3"),
  ("12 - 5 = ?", "7", "The answer is 8, since 12 - 5 is 8."),
  ("4 + 4 = ?", "8", ""),
  ("30 + 12 = ?", "42", "42 " * 12),
  ("9 - 9 = ?", "0", "zero"),
  ("7 + 1 = ?", "8", "8"),
]


def test_score_is_the_normalised_verdict_probability_by_hand():
  model = _model()
  judge = ModelJudge(model, TOK, **BYTE)
  y, n = TOK.encode("Y")[0], TOK.encode("N")[0]
  assert (judge.positive_id, judge.negative_id) == (y, n)
  for q, a, r in ROWS[:3]:
    text = BYTE["template"].format(question=q, answer=a, response=r)
    ids = [TOK.bos_id] + TOK.encode(text)
    assert judge.encode(q, a, r) == ids
    logits = np.asarray(model(jax.numpy.asarray([ids]))[0, -1], np.float64)
    want = math.exp(logits[y]) / (math.exp(logits[y]) + math.exp(logits[n]))
    (got,) = judge.score([q], [a], [r])
    assert got == pytest.approx(want, abs=1e-5)


def test_batched_equals_row_by_row():
  model = _model(seed=1)
  qs, ans, rs = map(list, zip(*ROWS))
  batched = ModelJudge(model, TOK, batch_size=4, length_bucket=16, **BYTE).score(qs, ans, rs)
  single = ModelJudge(model, TOK, batch_size=1, length_bucket=64, **BYTE)
  rows = np.asarray([single.score([q], [a], [r])[0] for q, a, r in ROWS])
  assert batched.shape == (6,) and batched.dtype == np.float32
  np.testing.assert_allclose(batched, rows, atol=1e-5)
  assert np.all((batched > 0) & (batched < 1)) and np.ptp(batched) > 0


def test_verdict_words_are_resolved_in_context(bpe):
  """ "Yes" and " Yes" are different tokens: the verdict is the one that follows the template."""
  spaced = verdict_token_id(bpe, " Yes", context="Verdict:", argument="positive")
  assert spaced == bpe.encode(" Yes")[-1] and len(bpe.encode(" Yes")) == 1
  assert spaced != bpe.encode("Yes")[0] and len(bpe.encode("Yes")) == 1
  judge = ModelJudge(_model(vocab=bpe.vocab_size), bpe)  # defaults: " Yes" / " No"
  assert judge.positive_id == spaced and bpe.decode([judge.negative_id]) == " No"
  # Through the chat template the verdict follows the assistant header's newline: "Yes".
  chat = ModelJudge(_model(vocab=bpe.vocab_size), bpe, chat=True, positive="Yes", negative="No")
  assert bpe.decode([chat.positive_id]) == "Yes" and chat.positive_id != spaced
  assert chat.render("q", "a", "r").endswith("assistant\n")
  assert 0.0 < chat.score(["q"], ["a"], ["r"])[0] < 1.0
  with pytest.raises(JudgeError, match="positive='Yes' merges with the end of the template"):
    ModelJudge(_model(vocab=bpe.vocab_size), bpe, template="{response} Verdict: ", positive="Yes")


def test_bad_input_is_named(bpe):
  model = _model()
  with pytest.raises(JudgeError, match=r"positive=' Yes' tokenizes to 4 tokens"):
    ModelJudge(model, TOK)  # a byte tokenizer: " Yes" is 4 bytes
  with pytest.raises(JudgeError, match="its tokenizer has 500 ids but the model's vocabulary"):
    ModelJudge(model, bpe)
  with pytest.raises(JudgeError, match=r"template must contain a \{response\} field"):
    ModelJudge(model, TOK, **(BYTE | {"template": "Q:{question} A:{answer}?"}))
  with pytest.raises(JudgeError, match="field other than"):
    ModelJudge(model, TOK, **(BYTE | {"template": "{response} {}?"}))
  with pytest.raises(JudgeError, match="field other than"):
    ModelJudge(model, TOK, **(BYTE | {"template": "{response} {grade}?"}))
  with pytest.raises(JudgeError, match="template must be a non-empty string"):
    ModelJudge(model, TOK, **(BYTE | {"template": " "}))
  with pytest.raises(JudgeError, match="resolve to the same token id"):
    ModelJudge(model, TOK, **(BYTE | {"negative": "Y"}))
  with pytest.raises(JudgeError, match="negative must be a non-empty string"):
    ModelJudge(model, TOK, **(BYTE | {"negative": ""}))
  with pytest.raises(JudgeError, match="chat=True needs a tokenizer with a chat template"):
    ModelJudge(model, TOK, chat=True, **BYTE)
  with pytest.raises(JudgeError, match="batch_size must be a positive int"):
    ModelJudge(model, TOK, batch_size=0, **BYTE)
  judge = ModelJudge(model, TOK, **BYTE)
  with pytest.raises(JudgeError, match="one entry per row"):
    judge.score(["q"], ["a", "b"], ["r"])
  with pytest.raises(JudgeError, match=r"responses\[0\]: the judge input has \d+ tokens"):
    judge.score(["q"], ["a"], ["x" * (model.config.max_position_embeddings + 1)])


def test_judge_agreement_by_hand():
  judge = [0.9, 0.2, 0.6, 0.4]
  verifier = [1.0, 0.0, 0.0, 0.0]
  got = judge_agreement(judge, verifier)
  assert got["accuracy"] == pytest.approx(0.75)  # the 0.6 is wrong
  jm, vm = np.mean(judge), 0.25
  cov = np.mean((np.asarray(judge) - jm) * (np.asarray(verifier) - vm))
  want = cov / (np.std(judge) * np.std(verifier))
  assert got["pearson"] == pytest.approx(want)
  assert got["cells"] == 4 and got["positive_rate"] == 0.25
  assert got["judge_mean"] == pytest.approx(0.525) and got["verifier_mean"] == 0.25
  assert math.isnan(judge_agreement([0.5, 0.7], [1.0, 1.0])["pearson"])  # constant verifier
  with pytest.raises(ValueError, match="same non-zero size"):
    judge_agreement([0.5], [1.0, 0.0])
  with pytest.raises(ValueError, match="threshold"):
    judge_agreement([0.5], [1.0], threshold=1.0)


def test_from_hf_folder(tmp_path):
  pytest.importorskip("torch")
  pytest.importorskip("transformers")
  from tests.helpers.tiny_hf import write_tiny_checkpoint

  folder = write_tiny_checkpoint(str(tmp_path / "qwen-judge"), "qwen3")
  judge = ModelJudge.from_hf(folder, positive="Y", negative="N", batch_size=4)
  assert judge.name == "qwen-judge"
  assert judge.tokenizer.decode([judge.positive_id]) == "Y"
  qs, ans, rs = map(list, zip(*ROWS))
  scores = judge.score(qs, ans, rs)
  assert np.all((scores > 0) & (scores < 1))
  single = [judge.score([q], [a], [r])[0] for q, a, r in ROWS]
  np.testing.assert_allclose(scores, single, atol=1e-5)
  with pytest.raises(Exception, match="judge hf_dir"):
    ModelJudge.from_hf(str(tmp_path / "missing"))
