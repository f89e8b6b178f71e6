"""The house rules, checked: the README's imports work, files hold one concept, the import
contracts (import-linter) and the lint/format rules (ruff) hold.

import-linter and ruff are pinned test dependencies (setup.py); .ci/run also runs them
directly, so a broken contract fails CI even where this file is deselected.
"""

from __future__ import annotations

import ast
import importlib
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Files past this many lines must say in their module docstring why they are one concept.
MAX_LINES = 650
ONE_CONCEPT = re.compile(r"one concept", re.IGNORECASE)


def _readme_import_statements() -> list[str]:
  """Every import statement in the README's python code blocks."""
  text = (ROOT / "README.md").read_text(encoding="utf-8")
  statements = []
  for block in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL):
    try:
      tree = ast.parse(block)
    except SyntaxError:  # A block with prose or `...`: fall back to its import lines.
      tree = ast.parse(
        "\n".join(line for line in block.splitlines() if re.match(r"\s*(from \S+ )?import ", line))
      )
    for node in ast.walk(tree):
      if isinstance(node, (ast.Import, ast.ImportFrom)):
        statements.append(ast.unparse(node))
  return statements


def test_readme_has_python_imports():
  statements = _readme_import_statements()
  assert len(statements) >= 5, statements


@pytest.mark.parametrize("statement", _readme_import_statements())
def test_readme_import_works(statement):
  namespace: dict = {}
  exec(compile(statement, "<README.md>", "exec"), namespace)  # noqa: S102 (our own README)


def _package_files() -> list[pathlib.Path]:
  files = []
  for package in ("reasoning_jax", "pallas_kernels", "experiments"):
    files.extend(sorted((ROOT / package).rglob("*.py")))
  return files


def test_files_hold_one_concept():
  too_long = []
  for path in _package_files():
    lines = path.read_text(encoding="utf-8").count("\n")
    if lines <= MAX_LINES:
      continue
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    if not ONE_CONCEPT.search(docstring):
      too_long.append(f"{path.relative_to(ROOT)} ({lines} lines)")
  assert not too_long, (
    f"files past {MAX_LINES} lines whose docstring does not say why they are one concept: "
    f"{too_long}; split them by concept"
  )


def test_no_import_cycles():
  """No module reaches itself through imports (function-local imports count), so every
  module imports first without depending on another having been imported before it."""
  grimp = pytest.importorskip("grimp")  # installed with import-linter (test extra)
  sys.path.insert(0, str(ROOT))
  try:
    graph = grimp.build_graph("reasoning_jax", "pallas_kernels", "experiments", cache_dir=None)
  finally:
    sys.path.remove(str(ROOT))
  cycles = set()
  for module in graph.modules:
    for imported in graph.find_modules_directly_imported_by(module):
      if graph.chain_exists(importer=imported, imported=module):
        chain = graph.find_shortest_chain(importer=imported, imported=module)
        cycles.add(" -> ".join((module, *chain)))
  assert not cycles, sorted(cycles)


def _tool(name: str) -> str:
  found = shutil.which(name) or shutil.which(name, path=str(pathlib.Path(sys.executable).parent))
  if found is None:
    pytest.skip(f"{name} is not installed (it is in the test extra: pip install -e '.[test]')")
  return found


def test_import_contracts_hold():
  result = subprocess.run(
    [_tool("lint-imports")], cwd=ROOT, capture_output=True, text=True, timeout=600
  )
  assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.mark.parametrize("args", [("check", "."), ("format", "--check", ".")])
def test_ruff(args):
  result = subprocess.run(
    [_tool("ruff"), *args], cwd=ROOT, capture_output=True, text=True, timeout=300
  )
  assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_importlib_is_not_used_to_hide_dependencies():
  """Only the registry imports modules by name (its kernel plugins, declared as data)."""
  offenders = []
  for path in _package_files():
    rel = path.relative_to(ROOT)
    if rel.as_posix() in ("reasoning_jax/registry.py", "reasoning_jax/data/__init__.py"):
      continue
    if re.search(r"importlib\.import_module|__import__\(", path.read_text(encoding="utf-8")):
      offenders.append(str(rel))
  assert not offenders, offenders


def test_validation_module_is_importable():
  importlib.import_module("reasoning_jax.validation")
