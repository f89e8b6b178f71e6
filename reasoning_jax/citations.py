"""What to cite for a configuration: BibTeX for every registry name and every method page.

The bibliography is `reasoning_jax/references.bib` (shipped with the package; the docs link to
the same file). Each citable name maps to BibTeX keys there:

* a method (`"dispo"`, `"gla"`, `"sliding_window_flash_attention"`, ...): the page
  `docs/methods/<method>.md` and its paper(s), `METHODS`;
* a registry entry, as `"<category>:<name>"` with the registry's category (`"loss:dispo"`,
  `"mixer:gla"`, `"GLA chunk kernel:pallas"`), or by its bare name where that is unambiguous:
  the entries of the method registries (`CITED_REGISTRIES`) map to a method page
  (`REGISTRY_METHODS`) or are engineering baselines with their own citation
  (`ENGINEERING_BASELINES`). A mixer or FFN variant registered at run time (`make_gla_mixer`,
  `make_momentum_mixer`, ...) is cited as the registered class it derives from.

`tests/test_citations.py` checks that every name in every registry is covered, so a new
registry entry without a page or citation fails the tests; registries of options of a method
(KL estimators, aggregation modes, GLA forms, ...) are listed in `OPTION_REGISTRIES` instead.

Example:
  >>> from reasoning_jax import citations
  >>> print(citations.bibtex("dispo"))            # the DISPO paper
  >>> citations.write_citations(["loss:grpo", "mixer:gla"], "outputs/run/CITATIONS.bib")

The trainers and experiments call `write_citations` with `run_components(...)` of their run,
so every workdir holds a `CITATIONS.bib` for the methods it used.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from reasoning_jax import registry

__all__ = [
  "CITED_REGISTRIES",
  "ENGINEERING_BASELINES",
  "METHODS",
  "OPTION_REGISTRIES",
  "REGISTRY_METHODS",
  "Method",
  "bibliography",
  "bibtex",
  "citation_keys",
  "citable_names",
  "parse_bibtex",
  "run_components",
  "uncited",
  "write_citations",
]

BIB_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "references.bib")


@dataclasses.dataclass(frozen=True)
class Method:
  """A documented method: its page `docs/methods/<name>.md`, title and BibTeX keys."""

  title: str
  keys: tuple[str, ...]


# One page per method in docs/methods/ (the page's file name is the key).
METHODS: dict[str, Method] = {
  "grpo": Method("GRPO", ("shao2024deepseekmath",)),
  "dapo": Method("DAPO", ("yu2025dapo",)),
  "dr_grpo": Method("Dr. GRPO", ("liu2025understanding",)),
  "cispo": Method("CISPO", ("minimax2025minimaxm1",)),
  "dispo": Method("DISPO", ("karaman2026dispo",)),
  "arm": Method("ARM (ProGRPO)", ("li2026backtobasics",)),
  "mrpo": Method("MRPO", ("wang2026mrpo", "roy2007effective")),
  "sliding_window_flash_attention": Method(
    "Sliding-window flash attention",
    ("dao2022flashattention", "dao2023flashattention2", "beltagy2020longformer"),
  ),
  "gla": Method("Gated linear attention", ("yang2023gla",)),
  "ovq": Method("OVQ attention", ("alonso2026ovq",)),
  "momentum_attention": Method("Momentum attention", ("maitra2026momentum",)),
  "monotone_ffn": Method("Monotone FFN", ("cooper2026monotonicity",)),
  "speculative_decoding": Method(
    "Speculative decoding", ("leviathan2023fast", "chen2023accelerating")
  ),
  "semanticspec": Method("SemanticSpec", ("dong2026beyond",)),
  "gptq": Method("GPTQ and round-to-nearest", ("frantar2023gptq",)),
  "bpdq": Method("BPDQ", ("chen2026bpdq",)),
  "grad2reward": Method("Grad2Reward", ("zhang2026grad2reward",)),
  "remit": Method("ReMiT", ("huang2026remit",)),
  "trajfusion": Method("TrajFusion", ("deng2026trajfusion", "yuan2023scaling")),
  "cpmobius": Method("CPMöbius", ("li2026cpmobius",)),
  "rosa": Method("ROSA-Tuning", ("zheng2026rosa", "peng2025rosa")),
  "infmem": Method(
    "InfMem", ("wang2026infmem", "yu2025memagent", "robertson2009bm25", "yang2018hotpotqa")
  ),
  "lycheedecode": Method(
    "LycheeDecode (with Quest and DuoAttention)",
    (
      "lin2026lycheedecode",
      "tang2024quest",
      "xiao2024duoattention",
      "bastings2019interpretable",
      "yang2024tidaldecode",
    ),
  ),
  "r2router": Method(
    "R2-Router", ("xue2026r2router", "ong2024routellm", "jitkrittum2025universal")
  ),
}

# Registries whose every entry is a method or a baseline that must be cited (by category).
CITED_REGISTRIES: tuple[str, ...] = (
  "loss",
  "advantage estimator",
  "mixer",
  "ffn",
  "attention implementation",
  "GLA chunk kernel",
  "OVQ chunk kernel",
  "dequant-matmul kernel",
  "sparse decode kernel",
)

# (category, name) -> the method page that documents it.
REGISTRY_METHODS: dict[tuple[str, str], str] = {
  ("loss", "grpo"): "grpo",
  ("loss", "dapo"): "dapo",
  ("loss", "dr_grpo"): "dr_grpo",
  ("loss", "cispo"): "cispo",
  ("loss", "dispo"): "dispo",
  ("advantage estimator", "grpo"): "grpo",
  ("advantage estimator", "dr_grpo"): "dr_grpo",
  ("advantage estimator", "arm"): "arm",
  ("advantage estimator", "mrpo"): "mrpo",
  ("advantage estimator", "token_grpo"): "grad2reward",
  ("advantage estimator", "token_rloo"): "grad2reward",
  ("mixer", "sliding_attention"): "sliding_window_flash_attention",
  ("mixer", "gla"): "gla",
  ("mixer", "ovq"): "ovq",
  ("mixer", "momentum_attention"): "momentum_attention",
  ("mixer", "rosa"): "rosa",
  ("ffn", "monotone"): "monotone_ffn",
  ("ffn", "monotone_gated"): "monotone_ffn",
  ("attention implementation", "pallas"): "sliding_window_flash_attention",
  ("GLA chunk kernel", "pallas"): "gla",
  ("OVQ chunk kernel", "pallas"): "ovq",
  ("dequant-matmul kernel", "pallas"): "bpdq",
  ("sparse decode kernel", "pallas"): "lycheedecode",
}

# (category, name) -> BibTeX keys: the baselines the methods are measured against or built on;
# cited, without a method page of their own.
ENGINEERING_BASELINES: dict[tuple[str, str], tuple[str, ...]] = {
  ("loss", "ppo_clip"): ("schulman2017ppo",),
  ("advantage estimator", "rloo"): ("ahmadian2024backtobasics",),
  ("mixer", "attention"): ("vaswani2017attention",),
  ("mixer", "base_conv"): ("arora2023zoology",),
  ("ffn", "swiglu"): ("shazeer2020glu",),
  ("ffn", "relu"): ("vaswani2017attention",),
  ("ffn", "none"): ("olsson2022induction",),
  ("attention implementation", "xla"): ("vaswani2017attention",),
}

# Registries of options inside a method (category -> where they are documented); their
# entries are not cited one by one.
OPTION_REGISTRIES: dict[str, str] = {
  "aggregation mode": "loss aggregation of the policy losses (pages grpo, dapo, dr_grpo)",
  "KL estimator": "KL term of the policy losses (page grpo)",
  "importance-sampling correction": "sampler/trainer mismatch correction of the RL trainer "
  "(reasoning_jax.rl.importance)",
  "out-of-band rule": "DISPO's treatment of out-of-band IS weights (page dispo)",
  "gla mode": "the naive / chunk / recurrent forms of GLA (page gla)",
  "ovq mode": "the naive / chunk / recurrent forms of OVQ attention (page ovq)",
  "ovq growth schedule": "OVQ dictionary growth schedules (page ovq)",
  "ovq seeding rule": "OVQ new-slot initialisation: farthest-first, k-means++, random (page ovq)",
  "ovq update rule": "OVQ dictionary update: running mean or a constant rate (page ovq)",
  "ovq readout": "OVQ chunk readout: exact keys or Transformer-VQ-style quantised keys (page ovq)",
  "monotone activation": "activations of the monotone FFN (page monotone_ffn)",
  "rope type": "RoPE frequency schedules of the model families (reasoning_jax.models)",
  "reward": "answer verifiers and rubric graders of the tasks (reasoning_jax.rewards)",
  "ReMiT weight map": "ReMiT's token-weight maps, sigmoid-clip and tanh (page remit)",
  "decoder": "decoding methods compared by experiments.speculative: target-only and draft-only "
  "generate, spec@k (page speculative_decoding), semantic@tau (page semanticspec)",
  "reproduction": "reproduction experiments (reasoning_jax.reproduce): each names the method "
  "pages whose claims it tests (tests/test_reproduce.py checks every page is covered)",
}

# Where run-time variants of a category are registered (their base class decides the citation).
_VARIANT_REGISTRIES = {"mixer": registry.MIXERS, "ffn": registry.FFNS}

_ENTRY_START = re.compile(r"@(\w+)\s*\{\s*([^,\s]+)\s*,")
_FIELD = re.compile(r"\s*(\w+)\s*=\s*")


def _balanced(text: str, start: int) -> int:
  """Index just past the brace group opening at `text[start] == "{"`."""
  depth = 0
  for i in range(start, len(text)):
    if text[i] == "{":
      depth += 1
    elif text[i] == "}":
      depth -= 1
      if depth == 0:
        return i + 1
  raise ValueError(f"unbalanced braces in BibTeX starting at offset {start}")


def parse_bibtex(text: str) -> dict[str, dict[str, Any]]:
  """Parses BibTeX entries: key -> {"type", "fields" (name -> value), "text"}.

  Enough for the entries this project writes: `@type{key, field = {value} | number, ...}`.
  `%` comment lines are skipped. Raises ValueError on a malformed entry or a duplicate key.
  """
  text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("%"))
  entries: dict[str, dict[str, Any]] = {}
  pos = 0
  while True:
    at = text.find("@", pos)
    if at < 0:
      return entries
    m = _ENTRY_START.match(text, at)
    if not m:
      raise ValueError(f"malformed BibTeX entry at: {text[at : at + 60]!r}")
    end = _balanced(text, text.index("{", at))
    body = text[m.end() : end - 1]
    fields: dict[str, str] = {}
    i = 0
    while i < len(body):
      if body[i] in " \t\n,":
        i += 1
        continue
      f = _FIELD.match(body, i)
      if not f:
        raise ValueError(f"malformed field in BibTeX entry {m.group(2)!r}: {body[i : i + 40]!r}")
      j = f.end()
      if body[j : j + 1] == "{":
        k = _balanced(body, j)
        value = body[j + 1 : k - 1]
      else:
        k = j
        while k < len(body) and body[k] not in ",\n":
          k += 1
        value = body[j:k].strip()
      fields[f.group(1).lower()] = value
      i = k
    key = m.group(2)
    if key in entries:
      raise ValueError(f"duplicate BibTeX key {key!r}")
    entries[key] = {"type": m.group(1).lower(), "fields": fields, "text": text[at:end]}
    pos = end


@functools.cache
def bibliography() -> dict[str, str]:
  """BibTeX key -> entry text, from `reasoning_jax/references.bib`."""
  with open(BIB_PATH, encoding="utf-8") as f:
    return {k: v["text"] for k, v in parse_bibtex(f.read()).items()}


def _table() -> dict[tuple[str, str], tuple[str, ...]]:
  """Every citable (category, name) -> BibTeX keys, methods under category "method"."""
  table = {("method", name): m.keys for name, m in METHODS.items()}
  table.update({k: METHODS[page].keys for k, page in REGISTRY_METHODS.items()})
  table.update(ENGINEERING_BASELINES)
  return table


def citable_names() -> list[str]:
  """The bare names `bibtex` accepts (those with one meaning) and every `category:name`."""
  table = _table()
  meanings: dict[str, set[tuple[str, ...]]] = {}
  for (_, name), keys in table.items():
    meanings.setdefault(name, set()).add(keys)
  names = {n for n, m in meanings.items() if len(m) == 1}
  return sorted(names | {f"{c}:{n}" for c, n in table if c != "method"})


def _variant_keys(
  category: str, name: str, reg: registry.Registry | None = None
) -> tuple[str, ...] | None:
  """Keys of a run-time variant: the first class in its MRO registered under a cited name.

  `reg` is the registry holding `name` (default: the package's registry of `category`).
  """
  reg = reg if reg is not None else _VARIANT_REGISTRIES.get(category)
  if reg is None or name not in reg:
    return None
  cls = reg.get(name)
  table = _table()
  for base in getattr(cls, "__mro__", (cls,)):
    for other in reg.names():
      if (category, other) in table and reg.get(other) is base:
        return table[(category, other)]
  return None


def citation_keys(name: str, *, category: str | None = None) -> tuple[str, ...]:
  """The BibTeX keys to cite for `name`.

  Args:
    name: a method page name ("dispo"), a registry name ("gla"), or "category:name"
      ("loss:dispo", "GLA chunk kernel:pallas").
    category: the registry category, instead of the "category:" prefix.

  Raises:
    KeyError: naming `name` and the valid names, when nothing is citable under it or when a
      bare name means different papers in different registries (e.g. "pallas").
  """
  if category is None and ":" in name:
    category, name = name.split(":", 1)
  table = _table()
  if category is not None:
    keys = table.get((category, name)) or _variant_keys(category, name)
    if keys is None:
      raise KeyError(
        f"no citation for {category} {name!r}; citable {category} names: "
        f"{sorted(n for c, n in table if c == category)} (all names: citable_names())"
      )
    return keys
  found = {c: keys for (c, n), keys in table.items() if n == name}
  if not found:
    for c in _VARIANT_REGISTRIES:
      keys = _variant_keys(c, name)
      if keys is not None:
        found[c] = keys
  if not found:
    raise KeyError(f"no citation for {name!r}; citable names: {citable_names()}")
  if len(set(found.values())) > 1:
    raise KeyError(
      f"{name!r} means different methods in different registries; name one of "
      f"{sorted(f'{c}:{name}' for c in found if c != 'method')}"
    )
  return next(iter(found.values()))


def bibtex(name: str, *, category: str | None = None) -> str:
  """The BibTeX entries to cite for `name` (see `citation_keys`), blank-line separated."""
  bib = bibliography()
  return "\n\n".join(bib[k] for k in citation_keys(name, category=category)) + "\n"


def run_components(
  *,
  loss: str | None = None,
  advantage: str | None = None,
  model: Any = None,
  attention_implementation: str | None = None,
  methods: Iterable[str] = (),
) -> list[str]:
  """The "category:name" components of a run, for `write_citations`.

  Args:
    methods: method pages the run used beyond its registry names (e.g. "grad2reward" for
      the judge recipes, "remit" for ReMiT mid-training).
    loss: the `LOSSES` name the run trained with.
    advantage: the `ADVANTAGES` name.
    model: a `ModelConfig` (its `mixer` and `ffn`, one name or one per layer), or None.
    attention_implementation: an `ATTENTION_IMPLEMENTATIONS` name, when the run fixed one.
  """
  names = []
  if loss is not None:
    names.append(f"loss:{loss}")
  if advantage is not None:
    names.append(f"advantage estimator:{advantage}")
  if model is not None:
    for category in ("mixer", "ffn"):
      value = getattr(model, category)
      for layer_name in dict.fromkeys((value,) if isinstance(value, str) else value):
        names.append(f"{category}:{layer_name}")
  if attention_implementation is not None:
    names.append(f"attention implementation:{attention_implementation}")
  names.extend(methods)
  return names


def write_citations(names: Iterable[str], path: str) -> list[str]:
  """Writes the BibTeX entries of `names` (deduplicated, in order) to `path`.

  Args:
    names: citable names (see `citation_keys`), e.g. from `run_components`.
    path: the file to write, usually `<workdir>/CITATIONS.bib`.

  Returns:
    The BibTeX keys written. A name with no citation raises KeyError before anything is
    written.
  """
  names = list(dict.fromkeys(names))
  keys: dict[str, list[str]] = {}
  for name in names:
    for key in citation_keys(name):
      keys.setdefault(key, []).append(name)
  bib = bibliography()
  parts = [
    "% What this run used, and the papers to cite for it (reasoning_jax.citations).\n"
    "% Also cite reasoning_jax itself: CITATION.cff in the repository.\n"
  ]
  for key, used_by in keys.items():
    parts.append(f"% {', '.join(used_by)}\n{bib[key]}\n")
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(parts))
  return list(keys)


def uncited(registries: Mapping[str, registry.Registry]) -> list[str]:
  """The "category:name" entries of `registries` that have neither a page nor a citation.

  Args:
    registries: category -> Registry; each category must be in `CITED_REGISTRIES` or
      `OPTION_REGISTRIES` (an unknown category is reported as `"category:*"`).
  """
  missing = []
  for category, reg in registries.items():
    if category in OPTION_REGISTRIES:
      continue
    if category not in CITED_REGISTRIES:
      missing.append(f"{category}:*")
      continue
    table = _table()
    for name in reg.names():
      if (category, name) not in table and _variant_keys(category, name, reg) is None:
        missing.append(f"{category}:{name}")
  return missing
