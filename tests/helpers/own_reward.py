"""A user's own reward, outside the package, named by import path in tests
(`config.reward="tests.helpers.own_reward:always_right"`)."""

CALLS: list[tuple[str, str]] = []  # (completion, answer) of every call, for the tests.


def always_right(completion: str, answer: str, **fields) -> float:
  CALLS.append((completion, answer))
  return 1.0


class Scorers:
  @staticmethod
  def length(completion: str, answer: str, **fields) -> float:
    return float(len(completion))


NOT_CALLABLE = 3
