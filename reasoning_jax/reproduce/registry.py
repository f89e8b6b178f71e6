"""The registry of reproduction experiments: what each one runs, claims and concludes.

A `Reproduction` names a config file of `configs/` and its variant per suite (`quick`: tiny
sizes, checked in CI; `full`: the sizes whose tables the README and the method pages quote),
the library function that runs it (the same one its `python -m experiments.<name>` main
calls), the files it leaves (`results.md`, plots) and a verdict function that reads the
numbers it produced and says, per method, whether the paper's qualitative claim reproduced.
`experiments.reproduce` runs the registered ones (`reasoning_jax.reproduce.runner`) and
writes one report (`reasoning_jax.reproduce.report`).

A method that lands with an experiment registers it here (`register(Reproduction(...))` in
`reasoning_jax/reproduce/entries.py`); `tests/test_reproduce.py` checks that every method page
is covered by a reproduction or listed in `NOT_REPRODUCED` with the reason.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Callable, Mapping
from typing import Any

from reasoning_jax.registry import Registry

__all__ = [
  "NOT_REPRODUCED",
  "REPRODUCTIONS",
  "STATUSES",
  "SUITES",
  "Reproduction",
  "Verdict",
  "load_config",
  "ordered",
  "register",
  "repo_root",
]

SUITES = ("quick", "full")
# What a verdict may say. "reproduced": the claim's direction holds beyond the seed spread;
# "partly": it holds in some settings or only within the seed spread; "not reproduced": it
# does not hold at our scale; "not measured": the experiment cannot test it (said why).
STATUSES = ("reproduced", "partly", "not reproduced", "not measured")


@dataclasses.dataclass(frozen=True)
class Verdict:
  """One method's conclusion from one experiment."""

  method: str  # A page of docs/methods/ (a key of citations.METHODS).
  status: str  # One of STATUSES.
  reason: str  # One sentence with the numbers behind the status.

  def __post_init__(self):
    if self.status not in STATUSES:
      raise ValueError(f"Verdict.status must be one of {STATUSES}, got {self.status!r}")


@dataclasses.dataclass(frozen=True)
class Reproduction:
  """A registered reproduction experiment.

  Attributes:
    name: registry name, also the experiment's folder in the suite's workdir.
    title: one line for the report.
    claim: the paper's qualitative claim that the experiment tests, with the paper's numbers.
    methods: the method pages (`citations.METHODS` keys) whose claim it tests.
    config: path of its config file, relative to the repository root.
    variants: suite -> the config file's variant (`get_config(variant)`; "" = the default).
    run: the library function that runs the config and writes its files into
      `config.workdir`, returning its payload (entries wrap it in a function that imports it
      when the experiment runs, so that listing the registry stays cheap).
    command: the standalone command that runs the full variant.
    verdict: payload (what `run` returned) -> list of `Verdict`s.
    figures: files in the experiment's workdir that the report shows.
    paths: config keys holding output folders -> a template with `{dir}` (the experiment's
      folder) or `{root}` (the suite's workdir, for outputs shared between experiments such
      as a warm start both RL experiments train from).
    full_time: the expected time of the full variant, and where it was measured.
  """

  name: str
  title: str
  claim: str
  methods: tuple[str, ...]
  config: str
  variants: Mapping[str, str]
  run: Callable[[Any], Mapping[str, Any]]
  command: str
  verdict: Callable[[Mapping[str, Any]], list[Verdict]]
  figures: tuple[str, ...] = ()
  paths: Mapping[str, str] = dataclasses.field(default_factory=lambda: {"workdir": "{dir}"})
  full_time: str = ""

  def __post_init__(self):
    missing = [s for s in SUITES if s not in self.variants]
    if missing:
      raise ValueError(f"reproduction {self.name!r}: variants lacks suites {missing}")
    if not callable(self.run):
      raise ValueError(f"reproduction {self.name!r}: run must be callable, got {self.run!r}")

  def make_config(self, suite: str, *, directory: str, root: str):
    """The config of `suite` with its output folders moved under `directory` / `root`."""
    if suite not in SUITES:
      raise ValueError(f"suite must be one of {SUITES}, got {suite!r}")
    config = load_config(self.config, self.variants[suite])
    for key, template in self.paths.items():
      node = config
      *parents, leaf = key.split(".")
      for part in parents:
        node = node[part]
      node[leaf] = template.format(dir=directory, root=root)
    return config

  def fingerprint_config(self, suite: str):
    """The config of `suite` with its output folders left as `{dir}` / `{root}` placeholders.

    A finished run's record keeps the fingerprint of this config, not of the one with real
    folders, so that a record copied to another machine or folder (the report's archive in
    `docs/report/`) is still recognised as made with the current config.
    """
    return self.make_config(suite, directory="{dir}", root="{root}")


# Filled by reasoning_jax/reproduce/entries.py (imported by the package's __init__).
REPRODUCTIONS: Registry[Reproduction] = Registry("reproduction")
_ORDER: list[str] = []  # Registration order: the order of the suite and of the report.


def register(entry: Reproduction) -> Reproduction:
  """Registers `entry` under its name; suites run (and reports list) in registration order."""
  REPRODUCTIONS.register(entry.name)(entry)
  if entry.name not in _ORDER:
    _ORDER.append(entry.name)
  return entry


def ordered() -> list[Reproduction]:
  """Every registered reproduction, in registration order."""
  names = [n for n in _ORDER if n in REPRODUCTIONS] + sorted(
    set(REPRODUCTIONS.names()) - set(_ORDER)
  )
  return [REPRODUCTIONS.get(n) for n in names]


# Method pages without a reproduction experiment, and why (tests/test_reproduce.py requires
# every page to be covered by a reproduction or listed here).
NOT_REPRODUCED: dict[str, str] = {
  "sliding_window_flash_attention": (
    "an exact kernel, not a modelling claim: its outputs and gradients equal the reference "
    "(tests/pallas_kernels), and its speed is measured by benchmarks/attention.py on an "
    "accelerator"
  ),
}


def repo_root() -> str:
  """The checkout that holds `configs/`: the working directory, else the package's parent."""
  for candidate in (os.getcwd(), os.path.dirname(os.path.dirname(os.path.dirname(__file__)))):
    if os.path.isdir(os.path.join(candidate, "configs")):
      return os.path.abspath(candidate)
  raise FileNotFoundError(
    "experiments.reproduce needs the repository's configs/ folder (not part of the installed "
    "package): run it from a checkout of reasoning_jax"
  )


def load_config(path: str, variant: str = ""):
  """`get_config(variant)` of the config file `path` (relative to the repository root)."""
  full = path if os.path.isabs(path) else os.path.join(repo_root(), path)
  if not os.path.isfile(full):
    raise FileNotFoundError(f"config file {full!r} does not exist")
  name = "reproduce_config_" + os.path.splitext(os.path.basename(full))[0]
  spec = importlib.util.spec_from_file_location(name, full)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(variant) if variant else module.get_config()
