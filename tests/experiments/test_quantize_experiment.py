"""`python -m experiments.quantize` at tiny size: files, the rows' byte counts, the model reused,
an HF folder, the verdict, and named config errors. Checks plumbing, not the methods' ranking
(tests/quant/ pins the algorithms)."""

from __future__ import annotations

import json
import os
import pathlib
import sys
import types

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from configs import quantize as quantize_config  # noqa: E402
from experiments import quantize  # noqa: E402
from reasoning_jax.evaluate.quantize import parse_setting, parse_settings  # noqa: E402
from reasoning_jax.reproduce.entries_quant import quantize_verdict  # noqa: E402


def _tiny(tmp_path):
  config = quantize_config.get_config("quick")
  config.workdir = str(tmp_path / "q")
  config.settings = ("gptq-w2g32", "bpdq-w2g32")
  return config


def _run_main(config, monkeypatch):
  monkeypatch.setattr(quantize, "_CONFIG", types.SimpleNamespace(value=config), raising=False)
  quantize.main(["experiments.quantize"])
  with open(os.path.join(config.workdir, "results.json")) as f:
    return json.load(f)


def test_quantize_experiment_quick_and_hf_folder(tmp_path, monkeypatch):
  config = _tiny(tmp_path)
  config.seeds = (0,)  # The quick suite runs the quick variant's 2 seeds (tests/test_reproduce.py).
  payload = _run_main(config, monkeypatch)
  for name in ("results.md", "tradeoff.png", "CITATIONS.bib"):
    assert os.path.getsize(os.path.join(config.workdir, name)) > 0, name
  bib = pathlib.Path(os.path.join(config.workdir, "CITATIONS.bib")).read_text()
  assert "frantar2023gptq" in bib and "chen2026bpdq" in bib
  s = payload["summary"]
  assert set(s) == {"gptq-w2g32", "bpdq-w2g32"}
  assert s["gptq-w2g32"]["bits_per_weight"][0] == pytest.approx(2 + 24 / 32)
  assert s["bpdq-w2g32"]["bits_per_weight"][0] == pytest.approx(2 + 16 * 3 / 32)
  for row in payload["runs"].values():
    assert len(row) == len(config.seeds)
    for run in row:
      assert run["error"] > 0 and run["ppl"] > 1 and 0 <= run["accuracy"] <= 1
      assert run["bytes"] < payload["float"]["bytes"]
  assert "bpdq-w2g32 / gptq-w2g32" in payload["ratios"]
  verdicts = {v.method: v for v in quantize_verdict(payload)}
  assert verdicts["bpdq"].status in ("reproduced", "partly", "not reproduced")
  assert verdicts["gptq"].status == "not measured"  # No RTN row in this run.

  # The trained model is reused (no second training), then exported and read as an HF folder.
  from reasoning_jax.evaluate.quantize.subject import load_subject
  from reasoning_jax.models.hf import to_hf

  subject = load_subject(config)
  hf_dir = to_hf(subject.model, str(tmp_path / "hf"))
  hf = _tiny(tmp_path)
  hf.workdir = str(tmp_path / "q_hf")
  hf.hf_dir, hf.tokenizer, hf.seeds = hf_dir, "byte", (0,)
  hf.settings = ("rtn-w4g32",)
  got = _run_main(hf, monkeypatch)
  assert got["subject"]["source"] == os.path.abspath(hf_dir)
  assert got["float"]["ppl"] == pytest.approx(payload["float"]["ppl"], rel=1e-4)


def test_settings_are_parsed_and_checked():
  s = parse_setting("bpdq-w3g256", {"n_iters": 4, "act_order": True})
  assert (s.method, s.config.bits, s.config.group_size, s.config.n_iters) == ("bpdq", 3, 256, 4)
  assert not s.config.act_order  # A GPTQ-only shared flag is left out of BPDQ rows.
  assert parse_setting("gptq-w2g128", {"act_order": True}).config.act_order
  with pytest.raises(ValueError, match="config.settings: 'gptq2'"):
    parse_setting("gptq2")
  with pytest.raises(ValueError, match="config.settings: 'bpdq-w5g128'.*bits"):
    parse_setting("bpdq-w5g128")
  with pytest.raises(ValueError, match="config.quant: unknown flags"):
    parse_setting("rtn-w4g128", {"bogus": 1})
  with pytest.raises(ValueError, match="duplicates"):
    parse_settings(("rtn-w4g128", "rtn-w4g128"))


def test_verdict_reads_paired_seeds():
  def run(error, ppl):
    return {"error": error, "ppl": ppl, "accuracy": 0.5, "bits_per_weight": 2.1875}

  runs = {
    "rtn-w2g128": [run(10.0 + i, 9.0 + i * 0.1) for i in range(3)],
    "gptq-w2g128": [run(5.0 + i, 7.0 + i * 0.1) for i in range(3)],
    "bpdq-w2g256": [run(5.1 + i, 7.2 + i * 0.1) for i in range(3)],
  }
  summary = {n: {m: [sum(r[m] for r in rs) / 3, 0.0] for m in rs[0]} for n, rs in runs.items()}
  verdicts = {v.method: v for v in quantize_verdict({"runs": runs, "summary": summary})}
  assert verdicts["gptq"].status == "reproduced"
  assert verdicts["bpdq"].status == "not reproduced"
  assert "error ratio" in verdicts["bpdq"].reason
