"""Property tests: every extractor, parser and reward is total over arbitrary text.

Also proves that no model output ever reaches `eval`/`exec` (they are patched to
raise) and that `compile` is only used to build syntax trees.
"""

from __future__ import annotations

import ast
import builtins
import pathlib
from fractions import Fraction

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import reasoning_jax.rewards
from reasoning_jax.rewards import REWARDS, countdown, extract, numbers, score_batch

FUZZ = settings(
  max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

# Tokens that exercise the interesting code paths far more often than st.text().
TOKENS = [
  "\\boxed",
  "\\fbox",
  "\\boxed ",
  "{",
  "}",
  "\\{",
  "\\}",
  "\\frac",
  "\\dfrac",
  "\\tfrac",
  "\\text",
  "\\text{ cm}",
  "\\mbox",
  "\\left(",
  "\\right)",
  "\\left",
  "\\sqrt",
  "\\!",
  "\\,",
  "{,}",
  "^\\circ",
  "\\%",
  "%",
  "$",
  "\\$",
  "####",
  "<answer>",
  "</answer>",
  "<answer",
  "=",
  "\n",
  " ",
  "\t",
  "0",
  "1",
  "2",
  "7",
  "9",
  "00",
  "1,234",
  ",",
  ".",
  "+",
  "-",
  "*",
  "/",
  "**",
  "//",
  "(",
  ")",
  "e",
  "E",
  "e400",
  "1e-400",
  "\\times 10^{",
  "\u2212",
  "\u00d7",
  "\u00f7",
  "\u0663",
  "x",
  "k",
  "_",
  "__import__('os')",
  "lambda",
  "'",
  "[",
  "]",
  ":",
  "\\",
  "\\\\",
  "abs(",
  ".real",
  "\x00",
]
TOKEN_TEXT = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)
ALPHABET_TEXT = st.text(alphabet="0123456789+-*/(){}[]\\.,=#$%^_ <>/eEaxnswrt\n", max_size=80)
ANY_TEXT = st.one_of(st.text(max_size=200), TOKEN_TEXT, ALPHABET_TEXT)

EXTRACTORS = [
  extract.extract_boxed,
  extract.extract_gsm8k_answer,
  extract.extract_answer_tag,
  extract.extract_last_number,
  countdown.extract_countdown_expression,
  *[lambda t, f=f: extract.extract_final_answer(t, f) for f in extract.ANSWER_FORMATS],
]
# A rubric with a negative item: rubric_rules scores lie in [-1/4, 1] (weights 1, 3, -1).
RUBRIC = (
  '{"items": [{"criterion": "shows 12", "weight": 1.0, "check": {"number": 12}}, '
  '{"criterion": "answer 7", "weight": 3.0, "check": {"final": 7}}, '
  '{"criterion": "says hi", "weight": -1.0, "check": {"text": "hi"}}]}'
)
FIELDS = {"numbers": [1, 2, 3, 7], "target": 10, "rubric": RUBRIC}
RANGES = {"rubric_rules": {-0.25, 0.0, 0.25, 0.75, 1.0, 0.5}}  # Others: 0 or 1.


def _check_everything(text: str) -> None:
  """Runs every public function on `text` and checks the result types."""
  for fn in EXTRACTORS:
    result = fn(text)
    assert result is None or (isinstance(result, str) and result and result == result.strip())
  value = numbers.parse_number(text)
  assert value is None or isinstance(value, Fraction)
  normalized = numbers.normalize_answer(text)
  assert isinstance(normalized, str)
  assert isinstance(numbers.answers_equal(text, text), bool)
  assert isinstance(numbers.answers_equal(text, "1/2"), bool)
  value = countdown.evaluate_expression(text)
  assert value is None or isinstance(value, Fraction)
  used = countdown.expression_numbers(text)
  assert used is None or all(type(n) is int for n in used)
  for use_all in (False, True):
    assert isinstance(
      countdown.check_countdown(text, [1, 2, 3, 7], 10, use_all_numbers=use_all), bool
    )
  for name in REWARDS:
    reward = REWARDS.get(name)(text, text[:20], **FIELDS)
    assert type(reward) is float and reward in RANGES.get(name, {0.0, 1.0})


@FUZZ
@given(ANY_TEXT)
@example("\\boxed{" * 50)
@example("(" * 300 + "1" + ")" * 300)
@example("-" * 199 + "1")
@example("1e" + "9" * 900)
@example("9" * 1000 + "/" + "0" * 5)
def test_everything_is_total_on_arbitrary_text(text):
  _check_everything(text)


@FUZZ
@given(st.lists(ANY_TEXT, max_size=4), st.data())
def test_score_batch_is_total(texts, data):
  answers = data.draw(st.lists(ANY_TEXT, min_size=len(texts), max_size=len(texts)))
  for name in REWARDS:
    scores = score_batch(
      name,
      texts,
      answers,
      numbers=[[1, 2, 3, 7]] * len(texts),
      target=[10] * len(texts),
      rubric=[RUBRIC] * len(texts),
    )
    assert scores.dtype == np.float32 and scores.shape == (len(texts),)
    assert set(scores.tolist()) <= RANGES.get(name, {0.0, 1.0})


@FUZZ
@given(st.fractions(max_denominator=10**6).filter(lambda f: abs(f.numerator) < 10**12))
def test_parse_number_round_trips_fractions(value):
  assert numbers.parse_number(str(value)) == value
  latex = f"\\frac{{{value.numerator}}}{{{value.denominator}}}"
  assert numbers.parse_number(latex) == value
  assert numbers.answers_equal(latex, str(value))


@FUZZ
@given(st.integers(min_value=-(10**30), max_value=10**30))
def test_parse_number_round_trips_integers(n):
  assert numbers.parse_number(f"{n:,}") == n
  assert numbers.parse_number(f"{n}.000") == n
  assert numbers.parse_number(f"${n}") == n


@FUZZ
@given(
  st.decimals(
    allow_nan=False, allow_infinity=False, min_value=-(10**20), max_value=10**20, places=6
  )
)
def test_parse_number_matches_decimal(value):
  assert numbers.parse_number(str(value)) == Fraction(value)


def _expressions(max_leaves: int = 6):
  leaf = st.integers(min_value=0, max_value=50).map(lambda n: (str(n), Fraction(n)))

  def combine(children):
    def build(pair_and_op):
      (left, lv), (right, rv), op = pair_and_op
      if lv is None or rv is None:
        value = None
      elif op == "+":
        value = lv + rv
      elif op == "-":
        value = lv - rv
      elif op == "*":
        value = lv * rv
      else:
        value = None if rv == 0 else lv / rv
      return f"({left} {op} {right})", value

    return st.tuples(children, children, st.sampled_from("+-*/")).map(build)

  return st.recursive(leaf, combine, max_leaves=max_leaves)


@FUZZ
@given(_expressions())
def test_evaluate_expression_matches_fraction_arithmetic(expr_and_value):
  expr, value = expr_and_value
  assert countdown.evaluate_expression(expr) == value


@settings(max_examples=40, deadline=None, database=None)
@given(
  st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=4),
  st.integers(min_value=0, max_value=60),
)
def test_solve_countdown_agrees_with_check(nums, target):
  expr = countdown.solve_countdown(nums, target)
  if expr is not None:
    assert countdown.check_countdown(expr, nums, target)
    assert countdown.check_countdown(f"<answer>{expr} = {target}</answer>", nums, target)


SAMPLES = [
  "",
  "1",
  "1 + 2",
  "__import__('os').system('echo pwned')",
  "eval('1')",
  "exec('x=1')",
  "(lambda: 1)()",
  "2**10",
  "1 / 0",
  "\\boxed{\\frac{1}{2}}",
  "#### 72",
  "<answer>1 + 2</answer>",
  "<answer>__import__('os')</answer>",
  "open('/etc/passwd').read()",
  "().__class__.__bases__",
  "1,234,567",
  "-0.50",
  "\\frac{-1}{2}",
  "1e400",
  "\\sqrt{2}",
  "x + 1",
  "{" * 30,
  "}" * 30,
]


def test_never_calls_eval_or_exec(monkeypatch):
  """`eval`/`exec` raise and `compile` may only build ASTs: everything still works."""
  real_compile = builtins.compile

  def forbidden(*args, **kwargs):
    raise AssertionError("eval/exec must never be called on model output")

  def ast_only_compile(source, filename, mode, flags=0, *args, **kwargs):
    if not flags & ast.PyCF_ONLY_AST:
      raise AssertionError("compile must only be used to build syntax trees")
    return real_compile(source, filename, mode, flags, *args, **kwargs)

  monkeypatch.setattr(builtins, "eval", forbidden)
  monkeypatch.setattr(builtins, "exec", forbidden)
  monkeypatch.setattr(builtins, "compile", ast_only_compile)
  for text in SAMPLES:
    _check_everything(text)
  assert countdown.evaluate_expression("(25 - 5) * 3 / 4") == 15
  assert countdown.solve_countdown([1, 2, 3, 4], 24, use_all_numbers=True) is not None
  assert (
    score_batch(
      "countdown", SAMPLES, None, numbers=[[1, 2]] * len(SAMPLES), target=[3] * len(SAMPLES)
    ).sum()
    == 2.0
  )  # "1 + 2" bare and tagged.


def test_source_never_names_dangerous_builtins():
  """Static check: the rewards package never references eval, exec, __import__ etc."""
  banned = {
    "eval",
    "exec",
    "compile",
    "__import__",
    "parse_expr",
    "sympify",
    "literal_eval",
    "getattr",
    "globals",
    "locals",
  }
  package_dir = pathlib.Path(reasoning_jax.rewards.__file__).parent
  files = sorted(package_dir.glob("*.py"))
  assert len(files) >= 5
  for path in files:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
      if isinstance(node, ast.Name):
        assert node.id not in banned, f"{path.name}:{node.lineno} references {node.id}"
      elif isinstance(node, ast.Attribute) and node.attr in banned:
        # `re.compile` builds regular expressions; anything else is suspicious.
        is_re_compile = (
          node.attr == "compile" and isinstance(node.value, ast.Name) and node.value.id == "re"
        )
        assert is_re_compile, f"{path.name}:{node.lineno} references .{node.attr}"
      if isinstance(node, ast.ImportFrom):
        assert node.module not in ("sympy", "sympy.parsing.sympy_parser"), path.name
