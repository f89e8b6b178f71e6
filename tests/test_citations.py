"""What to cite, checked: every registry name has a docs page and a BibTeX entry (or is an
engineering baseline with its own citation), the bibliography parses, CITATION.cff is valid.

A new entry in a method registry (a loss, an advantage estimator, a mixer, an FFN, a kernel)
fails `test_every_registry_name_is_cited` until it gets a page in docs/methods/ and an entry
in reasoning_jax/references.bib (`citations.REGISTRY_METHODS`, `citations.METHODS`), or is
listed in `citations.ENGINEERING_BASELINES`; a new registry fails
`test_every_registry_is_classified` until it is listed as cited or as options of a method.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

import reasoning_jax
from reasoning_jax import citations
from reasoning_jax.registry import Registry

ROOT = pathlib.Path(__file__).resolve().parents[1]
METHOD_DOCS = ROOT / "docs" / "methods"
ARXIV_ID = re.compile(r"^\d{4}\.\d{4,5}$")


_DISCOVER = r"""
import importlib, json, pkgutil, sys
import pallas_kernels, reasoning_jax
from reasoning_jax import citations
from reasoning_jax.registry import Registry

for package in (reasoning_jax, pallas_kernels):
  for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    importlib.import_module(info.name)
found = {}
for name, module in list(sys.modules.items()):
  if name.startswith(("reasoning_jax", "pallas_kernels")):
    for attr, value in vars(module).items():
      if isinstance(value, Registry):
        found.setdefault(id(value), (f"{name}.{attr}", value))
registries, duplicates = {}, []
for where, reg in found.values():
  if reg.category in registries:
    duplicates.append(where)
  registries[reg.category] = reg
print(json.dumps({
  "names": {c: r.names() for c, r in registries.items()},
  "duplicates": duplicates,
  "uncited": citations.uncited(registries),
}))
"""


@pytest.fixture(scope="module")
def package_registries() -> dict:
  """The package's own registries, as a fresh interpreter sees them after importing every
  module of reasoning_jax and pallas_kernels: {"names": {category: [names]}, "duplicates",
  "uncited"}. (In this process other tests may have registered test-only entries.)"""
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  out = subprocess.run(
    [sys.executable, "-c", _DISCOVER], cwd=ROOT, env=env, capture_output=True, text=True
  )
  assert out.returncode == 0, out.stderr[-3000:]
  found = json.loads(out.stdout.strip().splitlines()[-1])
  assert not found["duplicates"], (
    f"registries {found['duplicates']} share a category with another registry; categories "
    "name registries in reasoning_jax.citations"
  )
  return found


def _registry_objects() -> dict[str, Registry]:
  """category -> Registry object of this process (for looking up registered objects)."""
  for module in ("reasoning_jax.rl", "reasoning_jax.models", "reasoning_jax.ops.ovq"):
    importlib.import_module(module)  # Their imports register every method entry.
  objects = {}
  for name, module in list(sys.modules.items()):
    if name.startswith(("reasoning_jax", "pallas_kernels")):
      for value in vars(module).values():
        if isinstance(value, Registry):
          objects.setdefault(value.category, value)
  return objects


def test_every_registry_is_classified(package_registries):
  registries = package_registries["names"]
  cited, options = set(citations.CITED_REGISTRIES), set(citations.OPTION_REGISTRIES)
  assert not cited & options
  unclassified = sorted(set(registries) - cited - options)
  assert not unclassified, (
    f"registries {unclassified} are neither cited (citations.CITED_REGISTRIES: every name "
    "needs a page or an engineering-baseline citation) nor options of a method "
    "(citations.OPTION_REGISTRIES)"
  )
  stale = sorted((cited | options) - set(registries))
  assert not stale, f"citations lists registries that do not exist: {stale}"


def test_every_registry_name_is_cited(package_registries):
  missing = package_registries["uncited"]
  assert not missing, (
    f"registry entries with neither a docs page nor a citation: {missing}. Add a page "
    "docs/methods/<method>.md and its BibTeX entry to reasoning_jax/references.bib "
    "(citations.METHODS, citations.REGISTRY_METHODS), or list the entry in "
    "citations.ENGINEERING_BASELINES with its own citation"
  )


def test_citation_tables_name_registered_entries(package_registries):
  registries = package_registries["names"]
  for category, name in [*citations.REGISTRY_METHODS, *citations.ENGINEERING_BASELINES]:
    assert category in citations.CITED_REGISTRIES, (category, name)
    assert name in registries[category], f"{category}:{name} is cited but not registered"
  assert not set(citations.REGISTRY_METHODS) & set(citations.ENGINEERING_BASELINES)


def test_uncited_catches_a_new_entry_and_a_new_registry():
  losses = Registry("loss")
  losses.register("my_new_loss")(lambda *a, **k: None)
  assert citations.uncited({"loss": losses}) == ["loss:my_new_loss"]

  kinds = Registry("decoding method")
  kinds.register("beam")(object())
  assert citations.uncited({"decoding method": kinds}) == ["decoding method:*"]

  class Unrelated:
    pass

  mixers = Registry("mixer")
  mixers.register("my_mixer")(Unrelated)
  assert citations.uncited({"mixer": mixers}) == ["mixer:my_mixer"]
  # Options of a method are not cited one by one.
  assert citations.uncited({"KL estimator": Registry("KL estimator")}) == []


def test_a_registered_variant_is_cited_as_its_base():
  from reasoning_jax.layers.gla import GatedLinearAttention

  mixers = Registry("mixer")
  mixers.register("gla")(GatedLinearAttention)
  mixers.register("my_gla_variant")(type("MyGLA", (GatedLinearAttention,), {}))
  assert citations.uncited({"mixer": mixers}) == []


def test_method_pages_exist_for_every_method():
  pages = {p.stem for p in METHOD_DOCS.glob("*.md")} - {"index"}
  assert pages == set(citations.METHODS), (
    f"docs/methods pages {sorted(pages)} != citations.METHODS {sorted(citations.METHODS)}"
  )
  assert set(citations.REGISTRY_METHODS.values()) <= set(citations.METHODS)


def test_engineering_baselines_are_listed_in_the_docs():
  index = (METHOD_DOCS / "index.md").read_text(encoding="utf-8")
  for (category, name), keys in citations.ENGINEERING_BASELINES.items():
    row = f"| {category} | `{name}` |"
    assert row in index, f"docs/methods/index.md has no baseline row starting {row!r}"
    for key in keys:
      assert key in index, (category, name, key)


def test_bibliography_parses_and_every_entry_is_used():
  entries = citations.parse_bibtex(pathlib.Path(citations.BIB_PATH).read_text(encoding="utf-8"))
  used = {k for m in citations.METHODS.values() for k in m.keys}
  used |= {k for keys in citations.ENGINEERING_BASELINES.values() for k in keys}
  assert set(entries) == used, (
    f"unused entries {sorted(set(entries) - used)}, missing {sorted(used - set(entries))}"
  )
  for key, entry in entries.items():
    fields = entry["fields"]
    for field in ("title", "author", "year"):
      assert fields.get(field), f"{key} has no {field}"
    assert re.fullmatch(r"\d{4}", fields["year"]), key
    if fields.get("archiveprefix") == "arXiv":
      assert ARXIV_ID.match(fields["eprint"]), key
      assert fields["url"] == f"https://arxiv.org/abs/{fields['eprint']}", key


@pytest.mark.parametrize("name", citations.citable_names())
def test_bibtex_returns_parseable_entries(name):
  text = citations.bibtex(name)
  entries = citations.parse_bibtex(text)
  assert tuple(entries) == citations.citation_keys(name)


def test_bibtex_names_the_name_and_the_valid_ones():
  with pytest.raises(KeyError, match=r"no citation for 'no_such_method'.*'dispo'"):
    citations.bibtex("no_such_method")
  with pytest.raises(KeyError, match=r"citable loss names: \[.*'dispo'"):
    citations.bibtex("gla", category="loss")
  with pytest.raises(KeyError, match=r"'pallas' means different methods.*GLA chunk kernel:pallas"):
    citations.bibtex("pallas")
  assert citations.citation_keys("pallas", category="GLA chunk kernel") == ("yang2023gla",)
  assert citations.citation_keys("GLA chunk kernel:pallas") == ("yang2023gla",)
  assert citations.citation_keys("loss:grpo") == citations.citation_keys("grpo")


def test_cited_code_names_the_same_paper():
  """The docstrings of a method's code give the arXiv id of the paper we cite for it."""
  registries = _registry_objects()
  bib = citations.parse_bibtex(pathlib.Path(citations.BIB_PATH).read_text(encoding="utf-8"))
  for (category, name), page in citations.REGISTRY_METHODS.items():
    obj = registries[category].get(name)
    obj = getattr(obj, "fn", obj)  # A LossSpec holds the loss function.
    text = (inspect.getdoc(obj) or "") + (inspect.getdoc(inspect.getmodule(obj)) or "")
    ids = [bib[k]["fields"].get("eprint") for k in citations.METHODS[page].keys]
    assert any(i and i in text for i in ids), (
      f"{category}:{name} ({inspect.getmodule(obj).__name__}) does not mention arXiv {ids}"
    )


def test_method_page_bibtex_blocks_are_the_bibliography():
  bib = citations.bibliography()
  for name, method in citations.METHODS.items():
    page = (METHOD_DOCS / f"{name}.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bibtex\n(.*?)```", page, flags=re.DOTALL)
    assert blocks, f"docs/methods/{name}.md has no ```bibtex block"
    entries = citations.parse_bibtex("\n".join(blocks))
    assert tuple(entries) == method.keys, (name, tuple(entries), method.keys)
    for key, entry in entries.items():
      assert entry["text"] == bib[key], f"docs/methods/{name}.md: {key} differs from the .bib"


def test_docs_references_bib_is_the_package_bibliography():
  docs_bib = ROOT / "docs" / "references.bib"
  assert docs_bib.read_text(encoding="utf-8") == pathlib.Path(citations.BIB_PATH).read_text(
    encoding="utf-8"
  )


def test_write_citations(tmp_path):
  from reasoning_jax.models import get_preset

  model = get_preset("tiny-qwen3").replace(mixer=("gla", "attention"), ffn="swiglu")
  names = citations.run_components(loss="dispo", advantage="grpo", model=model)
  assert names == [
    "loss:dispo",
    "advantage estimator:grpo",
    "mixer:gla",
    "mixer:attention",
    "ffn:swiglu",
  ]
  path = tmp_path / "run" / "CITATIONS.bib"
  keys = citations.write_citations(names, str(path))
  assert keys == [
    "karaman2026dispo",
    "shao2024deepseekmath",
    "yang2023gla",
    "vaswani2017attention",
    "shazeer2020glu",
  ]
  assert list(citations.parse_bibtex(path.read_text(encoding="utf-8"))) == keys
  bad = tmp_path / "bad.bib"
  with pytest.raises(KeyError, match="no_such_loss"):
    citations.write_citations(["loss:grpo", "loss:no_such_loss"], str(bad))
  assert not bad.exists()


def _setup_py_field(field: str) -> str:
  m = re.search(rf'^\s*{field}="([^"]+)"', (ROOT / "setup.py").read_text(), flags=re.MULTILINE)
  assert m, field
  return m.group(1)


def test_citation_cff_is_valid():
  yaml = pytest.importorskip("yaml")
  cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
  # The required keys of CFF 1.2.0 and the types of the optional ones we use.
  assert cff["cff-version"] == "1.2.0"
  for key in ("message", "title"):
    assert isinstance(cff[key], str) and cff[key].strip(), key
  assert cff["authors"] and all(
    isinstance(a, dict) and (a.get("name") or a.get("family-names")) for a in cff["authors"]
  )
  assert cff["type"] in ("software", "dataset")
  assert str(cff["version"]) == _setup_py_field("version") == reasoning_jax.__version__
  assert cff["license"] == _setup_py_field("license")
  assert all(isinstance(k, str) for k in cff.get("keywords", []))
  allowed = {
    "cff-version", "message", "title", "type", "authors", "version", "license",
    "abstract", "keywords", "repository-code", "url", "date-released", "doi",
    "preferred-citation", "references", "identifiers",
  }  # fmt: skip
  assert set(cff) <= allowed, set(cff) - allowed
  # The reference validator, where installed (.ci/run installs it in its own environment:
  # cffconvert 2.0.0 pins jsonschema 3.2, which the test extra's nbformat outgrew).
  cffconvert = shutil.which("cffconvert")
  if cffconvert:
    subprocess.run([cffconvert, "--validate", "-i", str(ROOT / "CITATION.cff")], check=True)
