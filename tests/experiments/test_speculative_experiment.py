"""`python -m experiments.speculative` at tiny size: files, exactness, the pair reused, HF folders.

Checks plumbing (files, shapes, ranges, greedy identity with the target), not the method's
speed-up; `speculative_generate` itself is tested in tests/speculative/.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import types

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from configs import speculative as speculative_config  # noqa: E402
from experiments import speculative  # noqa: E402
from reasoning_jax.evaluate.speculative import (  # noqa: E402
  decoders,
  hf_pair,
  load_pair,
  make_decoder,
  make_decoders,
  per_token_flops,
)
from reasoning_jax.evaluate import trained_model  # noqa: E402
from reasoning_jax.evaluate.speculative import probes as probes_module  # noqa: E402


def _tiny(tmp_path):
  config = speculative_config.get_config("quick")
  config.workdir = str(tmp_path / "spec")
  config.decoders = ("target", "spec@2")
  config.batch_size, config.max_new_tokens = 4, 12
  return config


def _run_main(config, monkeypatch):
  monkeypatch.setattr(speculative, "_CONFIG", types.SimpleNamespace(value=config), raising=False)
  speculative.main(["experiments.speculative"])
  with open(os.path.join(config.workdir, "results.json")) as f:
    return json.load(f)


def test_speculative_experiment_quick(tmp_path, monkeypatch):
  config = _tiny(tmp_path)
  config.decoders = ("target", "spec@2", "semantic@0")  # The quick variant's semantic row.
  # Greedy only: tests/test_reproduce.py checks the quick suite's sampled rows (T=1).
  config.temperatures = (0.0,)
  payload = _run_main(config, monkeypatch)
  for name in ("results.md", "acceptance.png", "speedup.png", "CITATIONS.bib"):
    assert os.path.getsize(os.path.join(config.workdir, name)) > 0, name
  assert (
    "leviathan2023fast" in pathlib.Path(os.path.join(config.workdir, "CITATIONS.bib")).read_text()
  )
  assert set(payload["results"]) == {"0.0"}
  greedy = payload["results"]["0.0"]
  assert set(greedy) == {"target", "spec@2", "semantic@0"}
  # SemanticSpec: probes trained on training-split traces and saved; not lossless, so the
  # same-tokens column is a measurement; accepted steps split into fast path + probe.
  probes = payload["probes"]
  assert probes["prefixes"] >= probes["traces"] >= 1 and probes["mean_steps"] >= 1
  for role in ("target", "draft"):
    assert os.path.isfile(os.path.join(config.workdir, "probes", role, "probe.json"))
    assert np.isfinite(probes["probes"][role]["val_mse"])
  assert payload["decoders"]["semantic@0"]["lossless"] is False
  for run in greedy["semantic@0"]:
    assert 0.0 <= run["acceptance_rate"] <= 1.0 and run["tokens_per_target_call"] > 0
    split = run["fast_accept_rate"] + run["probe_accept_rate"]
    assert abs(split - run["acceptance_rate"]) < 1e-9
    assert len(run["acceptance_rate_by_position"]) == config.semantic.positions
  assert (
    "| semantic@0 | semantic | 0 | no | 0 |"
    in pathlib.Path(os.path.join(config.workdir, "results.md")).read_text()
  )
  for run in greedy["spec@2"]:
    assert run["same_as_target"] == 1.0  # Lossless: the target's greedy tokens.
    assert run["accuracy_delta"] == 0.0
    assert 1.0 <= run["tokens_per_target_call"] <= 3.0
    assert len(run["acceptance_rate_by_position"]) == 2 and run["speedup"] > 0
  assert [r["seed"] for r in greedy["target"]] == list(config.seeds)
  assert all(r["tokens_per_target_call"] == 1.0 for r in greedy["target"])
  table = pathlib.Path(os.path.join(config.workdir, "results.md")).read_text()
  assert "| spec@2 | spec | 2 | yes | 0 |" in table and "k / threshold" in table
  assert payload["pair"]["flops_ratio"] > 1.0
  for role in ("target", "draft"):
    assert os.path.isfile(os.path.join(config.workdir, "pair", f"{role}_hf", "config.json"))

  # A second run loads the pair instead of training it.
  def no_training(*args, **kwargs):
    raise AssertionError("the pair was trained again")

  monkeypatch.setattr("reasoning_jax.train.sft.run_sft", no_training)
  pair = load_pair(config)
  assert pair.source == "trained"
  # The probes are loaded too, and refused when built under other settings.
  assert probes_module.prepare_probes(config, pair)["loaded"] is True
  assert set(pair.extras["probes"]) == {"target", "draft"}
  config.semantic.num_samples += 1
  with pytest.raises(ValueError, match="num_samples: saved 4, config 5"):
    probes_module.prepare_probes(config, pair)
  config.semantic.num_samples -= 1

  # Verifier labels (the "verifier" variant's probes): each sampled step is labelled by the
  # share of its target continuations that the task's reward scores correct.
  verifier = _tiny(tmp_path)
  verifier.workdir = str(tmp_path / "verifier")
  verifier.target.workdir, verifier.draft.workdir = pair.dirs["target"], pair.dirs["draft"]
  verifier.semantic.label_mode, verifier.semantic.num_continuations = "verifier", 2
  report = probes_module.prepare_probes(verifier, pair)
  assert report["settings"]["label_mode"] == "verifier" and report["loaded"] is False
  for role in ("target", "draft"):
    fit = report["probes"][role]
    assert fit["examples"] > 0 and 0.0 <= fit["label_mean"] <= 1.0
    # Shares of 2 continuations: labels are 0, 0.5 or 1, so the variance is at most 0.25.
    assert 0.0 <= fit["label_var"] <= 0.25

  # The same experiment on two HF folders (here the exported pair, byte tokenizer): same
  # greedy outputs, hence the same accuracy.
  hf = _tiny(tmp_path)
  hf.workdir = str(tmp_path / "hf")
  hf.temperatures = (0.0,)
  hf.decoders = ("target", "spec@2")
  hf.target_hf_dir = os.path.join(config.workdir, "pair", "target_hf")
  hf.draft_hf_dir = os.path.join(config.workdir, "pair", "draft_hf")
  hf.tokenizer = "byte"
  hf.decode_batch = 3  # Calls of 3, 1 rows (batch 4): outputs concatenated, stats pooled.
  hf.target.workdir = pair.dirs["target"]  # Where the task's data was built.
  got = _run_main(hf, monkeypatch)
  assert got["pair"]["source"] == "hf"
  for run in got["results"]["0.0"]["spec@2"]:
    assert run["same_as_target"] == 1.0 and 1.0 <= run["tokens_per_target_call"] <= 3.0
    assert len(run["acceptance_rate_by_position"]) == 2
  for name in ("target", "spec@2"):
    assert [r["accuracy"] for r in got["results"]["0.0"][name]] == [
      r["accuracy"] for r in greedy[name]
    ]
  # Without tokenizer="byte" the folders' own tokenizer.json is needed; the error names the flag.
  with pytest.raises(ValueError, match="config.target_hf_dir=.*tokenizer.json not found"):
    hf_pair(hf.target_hf_dir, hf.draft_hf_dir)


def test_a_changed_pair_config_is_refused(tmp_path):
  wanted = _tiny(tmp_path).target
  same = {k: wanted.to_dict()[k] for k in trained_model.MODEL_KEYS if k in wanted}
  trained_model.check_saved(same, wanted, "/somewhere")  # Tuples saved as lists still match.
  with pytest.raises(ValueError, match="num_steps: saved 5"):
    trained_model.check_saved({**same, "num_steps": 5}, wanted, "/somewhere")


def test_decoder_registry_and_errors():
  assert {"target", "draft", "spec", "semantic", "semantic_nofast"} <= set(
    decoders.DECODERS.names()
  )
  d = make_decoder("spec@8")
  assert (d.name, d.family, d.param, d.lossless) == ("spec@8", "spec", 8.0, True)
  assert [d.name for d in make_decoders(["spec@2", "target", "spec@2"])] == ["target", "spec@2"]
  with pytest.raises(ValueError, match="must include 'target'"):
    make_decoders(["spec@2"])
  with pytest.raises(ValueError, match="number of drafts"):
    make_decoder("spec")
  with pytest.raises(ValueError, match="k must be >= 1"):
    make_decoder("spec@0")
  assert (make_decoder("draft").family, make_decoder("draft").lossless) == ("draft", False)
  d = make_decoder("semantic_nofast@0.5")
  assert (d.family, d.param, d.lossless) == ("semantic_nofast", 0.5, False)
  with pytest.raises(ValueError, match="needs the ratio floor"):
    make_decoder("semantic")
  with pytest.raises(ValueError, match="tau_min must be in"):
    make_decoder("semantic@2")
  with pytest.raises(KeyError, match="unknown decoder 'nope'"):
    make_decoder("nope@1")

  # A new family is a registered factory: its rows join the same table.
  @decoders.DECODERS.register("echo_test", override=True)
  def echo(param, config):
    return decoders.Decoder(f"echo_test@{param}", "echo_test", float(param), False, lambda: None)

  assert make_decoder("echo_test@0.5").param == 0.5


def test_boundary_rules():
  from reasoning_jax.tokenizers import ByteTokenizer

  tok = ByteTokenizer()
  newline, comma = tok.encode("\n"), tok.encode(",")
  assert probes_module.boundary_ids(tok, "newline") == tuple(newline)
  assert probes_module.boundary_ids(tok, "comma_newline") == tuple(sorted(newline + comma))
  assert probes_module.boundary_ids(tok, (13, 5)) == (5, 13)
  with pytest.raises(ValueError, match="config.semantic.boundary must be one of"):
    probes_module.boundary_ids(tok, "words")


def test_hf_pair_needs_both_folders(tmp_path):
  config = _tiny(tmp_path)
  config.target_hf_dir = str(tmp_path)
  with pytest.raises(ValueError, match="give both config.target_hf_dir and config.draft_hf_dir"):
    load_pair(config)


def test_per_token_flops_by_hand():
  config = types.SimpleNamespace(
    hidden_size=4,
    head_dim=2,
    num_heads=2,
    num_kv_heads=1,
    intermediate_size=8,
    num_layers=3,
    vocab_size=10,
  )
  # attention 4*2*(4+2) = 48, ffn 3*4*8 = 96, unembedding 40: 2 * (3 * 144 + 40).
  assert per_token_flops(config) == 2 * (3 * 144 + 40)
  assert np.isfinite(per_token_flops(config))
