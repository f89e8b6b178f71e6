"""The documentation's code runs: every ```python block of every page in docs/methods/.

Each page's blocks run in order in one fresh namespace (a later block may use an earlier one's
names), on CPU at tiny sizes; the blocks carry their own asserts (the spec's hand-computed
numbers). The Sphinx build itself (`python -m sphinx -W -b html docs docs/_build`) runs in
.ci/run.
"""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs" / "methods").glob("*.md"))
_BLOCK = re.compile(r"^```python\n(.*?)^```", flags=re.DOTALL | re.MULTILINE)


def _blocks(page: pathlib.Path) -> list[str]:
  return _BLOCK.findall(page.read_text(encoding="utf-8"))


def test_every_method_page_has_a_usage_example():
  missing = [p.name for p in PAGES if p.stem != "index" and not _blocks(p)]
  assert not missing, f"method pages without a ```python usage example: {missing}"


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p)], ids=lambda p: p.stem)
def test_page_code_runs(page):
  namespace: dict = {"__name__": f"docs_{page.stem}"}
  for i, block in enumerate(_blocks(page)):
    code = compile(block, f"{page.relative_to(ROOT)} (python block {i + 1})", "exec")
    exec(code, namespace)  # noqa: S102 (our own documentation)


def test_notebook_index_lists_every_notebook():
  """Every colab/*.ipynb is rendered in the docs (a link in docs/notebooks/) and listed, with
  its Colab link, in docs/notebooks/index.md and in colab/README.md."""
  index = (ROOT / "docs" / "notebooks" / "index.md").read_text(encoding="utf-8")
  readme = (ROOT / "colab" / "README.md").read_text(encoding="utf-8")
  notebooks = sorted((ROOT / "colab").glob("*.ipynb"))
  assert notebooks
  for nb in notebooks:
    rendered = ROOT / "docs" / "notebooks" / nb.name
    assert rendered.resolve() == nb.resolve(), f"docs/notebooks/{nb.name} must link to {nb}"
    assert f"{{doc}}`{nb.name} <{nb.stem}>`" in index, f"docs/notebooks/index.md lacks {nb.name}"
    assert f"{{{{ colab_{nb.stem} }}}}" in index, (
      f"docs/notebooks/index.md: no Colab link for {nb.name}"
    )
    assert f"`{nb.name}`" in readme, f"colab/README.md does not list {nb.name}"
