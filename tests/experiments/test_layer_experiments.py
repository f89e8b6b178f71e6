"""Tiny end-to-end runs of the absl mains experiments.induction / mqar / monotone_attack.

Each main runs on a tiny config (the `--config` flag's value set directly) and its output files
are checked. These check plumbing (files, shapes, ranges), not the papers' effects; the library
pieces are tested in tests/train/test_recall.py, tests/train/test_sweeps.py and
tests/evaluate/monotone_attack/.
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

from configs import induction as induction_config  # noqa: E402
from configs import monotone_attack as monotone_config  # noqa: E402
from configs import mqar as mqar_config  # noqa: E402
from experiments import induction, monotone_attack, mqar  # noqa: E402
from reasoning_jax.train import recall  # noqa: E402
from tests.helpers.recall_sweep import check_recall_outputs, tiny_recall  # noqa: E402


def _run_main(module, config, monkeypatch):
  """Runs `module.main` as `python -m` would with `--config` parsed to `config`; returns the
  `results.json` it wrote."""
  monkeypatch.setattr(module, "_CONFIG", types.SimpleNamespace(value=config), raising=False)
  module.main([module.__name__])
  with open(os.path.join(config.workdir, "results.json")) as f:
    return json.load(f)


def test_induction_experiment_tiny(tmp_path, monkeypatch):
  config = tiny_recall(induction_config.get_config(), tmp_path, ("induction", "repeated"))
  config.models = ("momentum_key_only@1@1",)
  config.model.hidden_size = 16
  config.task_configs.repeated.kwargs.half_len = 6
  config.task_configs.repeated.kwargs.min_half_len = 4
  config.task_configs.repeated.kwargs.vocab_size = 16
  payload = _run_main(induction, config, monkeypatch)
  check_recall_outputs(tmp_path, payload, ("induction", "repeated"), config.models)
  from reasoning_jax import registry

  cls = registry.MIXERS.get("momentum_key_only")
  assert cls.gamma_q_spec == 0.0 and cls.gamma_k_spec == "scaling_law"
  # The variant is cited as the method it derives from.
  cited = pathlib.Path(os.path.join(tmp_path, "CITATIONS.bib")).read_text()
  assert "% mixer:momentum_key_only" in cited and "@misc{maitra2026momentum," in cited


def test_mqar_experiment_tiny(tmp_path, monkeypatch):
  """Every mixer of the MQAR comparison (incl. the equal-state OVQ variant the config
  registers) runs; task entries name their generator."""
  config = tiny_recall(mqar_config.get_config(), tmp_path, ("mqar_kv8",))
  config.models = ("base_conv+attention@2", "gla@1", "ovq_eq@1")
  config.model.hidden_size = 16
  config.task_configs.mqar_kv8.kwargs.vocab_size = 128
  config.task_configs.mqar_kv8.kwargs.seq_len = 40
  payload = _run_main(mqar, config, monkeypatch)
  check_recall_outputs(tmp_path, payload, ("mqar_kv8",), config.models)


def test_mqar_config_compares_at_equal_state():
  """ovq_eq's per-head state (slots x (D + Dv + 1) + chunk buffer x (D + Dv)) is within 1%
  of GLA's D x D at the config's head dim."""
  from reasoning_jax import registry

  config = mqar_config.get_config()
  recall.register_mixer_variants(config.mixer_variants)
  ovq = registry.MIXERS.get("ovq_eq")
  d = config.model.hidden_size // config.model.num_heads
  ovq_floats = ovq.num_slots * (2 * d + 1) + ovq.chunk_size * 2 * d
  assert abs(ovq_floats - d * d) / (d * d) < 0.01
  assert {"attention@2", "base_conv+gla@2", "base_conv+ovq_eq@2"} <= set(config.models)
  model_config = recall.build_model_config(
    "base_conv+ovq_eq@2", vocab_size=256, max_len=64, model=config.model
  )
  assert model_config.mixer == ("base_conv", "ovq_eq")  # Zoology's hybrid: conv, then recall.
  assert all(t["generator"] == "mqar" for t in config.task_configs.values())
  with pytest.raises(ValueError, match="kind"):
    recall.register_mixer_variants({"x": {"kind": "lstm"}})
  zoology = mqar_config.get_config("zoology")  # --config=configs/mqar.py:zoology
  assert {t.kwargs.vocab_size for t in zoology.task_configs.values()} == {8192}
  assert zoology.tasks == ("mqar_kv8", "mqar_kv16", "mqar_kv32")
  with pytest.raises(ValueError, match="scale"):
    mqar_config.get_config("huge")


def test_mqar_ovq_sweeps():
  """configs/mqar.py:ablate, :state, :context and :window8/32 (issue 21): kv = 8 at the cpu
  scale, 3 seeds; every reading is an ovq_eq variant (16 slots, chunk 16) with one flag off the
  spec default; the sliding-window hybrid gets its window; the state curve pairs OVQ slot
  counts with GLA head dims of about the same floats per head (within 2%)."""
  from reasoning_jax import registry
  from reasoning_jax.ops.ovq import DEFAULT_FLAGS

  cpu = mqar_config.get_config()
  ablate = mqar_config.get_config("ablate")
  assert ablate.tasks == ("mqar_kv8",) and tuple(ablate.seeds) == (0, 1, 2)
  assert ablate.task_configs.mqar_kv8.to_dict() == cpu.task_configs.mqar_kv8.to_dict()
  assert ablate.train.to_dict() == cpu.train.to_dict() and ablate.workdir != cpu.workdir
  readings = {
    "ovq_eq": {},
    "ovq_eq_renorm": {"renormalize": True},
    "ovq_eq_every": {"schedule": "every_token"},
    "ovq_eq_dirichlet": {"schedule": "dirichlet"},
    "ovq_eq_linear": {"schedule": "linear"},
    "ovq_eq_random": {"seeding": "random"},
    "ovq_eq_constlr": {"update": "constant"},
    "ovq_eq_vq": {"readout": "vq"},
  }
  recall.register_mixer_variants(ablate.mixer_variants)
  for name, flags in readings.items():
    cls = registry.MIXERS.get(name)
    assert (cls.num_slots, cls.chunk_size) == (16, 16), name
    assert {f: getattr(cls, f) for f in DEFAULT_FLAGS} == {**DEFAULT_FLAGS, **flags}, name
  swa_spec = "sliding_attention+ovq_eq@2"
  assert set(ablate.models) == {
    "base_conv+gla@2",
    swa_spec,
    "sliding_attention+gla@2",  # the controls: the same window before GLA, and alone
    "sliding_attention@2",
    *(f"base_conv+{name}@2" for name in readings),
  }
  build = lambda config, spec: recall.build_model_config(
    spec,
    vocab_size=256,
    max_len=64,
    model=recall.model_for_spec(config.model, config.model_overrides, spec),
  )
  swa = build(ablate, swa_spec)
  assert swa.mixer == ("sliding_attention", "ovq_eq") and swa.sliding_window == 16
  assert build(ablate, "sliding_attention+gla@2").mixer == ("sliding_attention", "gla")
  assert build(ablate, "sliding_attention@2").mixer == "sliding_attention"
  assert build(ablate, "sliding_attention@2").sliding_window == 16
  assert build(ablate, "base_conv+gla@2").sliding_window is None

  state = mqar_config.get_config("state")
  recall.register_mixer_variants(state.mixer_variants)
  ovq, gla = [], []
  for spec in state.models:
    model_config = build(state, spec)
    cls = registry.MIXERS.get(model_config.mixer[1])
    d = model_config.head_dim
    if cls.__name__.startswith("OVQ"):
      assert d == 64 and cls.chunk_size == 16
      ovq.append(cls.num_slots * (2 * d + 1) + cls.chunk_size * 2 * d)
    else:
      gla.append(d * d)
  assert sorted(ovq) == ovq and len(ovq) == 4 and len(gla) == 4
  for a, b in zip(ovq, gla):
    assert abs(a - b) / b < 0.02, (a, b)

  # :context, the hybrid and its controls at longer T: only seq_len differs from ablate's task.
  long = mqar_config.get_config("context")
  assert long.tasks == ("mqar_kv8_t128", "mqar_kv8_t192") and tuple(long.seeds) == (0, 1, 2)
  assert set(long.models) == {swa_spec, "sliding_attention+gla@2", "sliding_attention@2"}
  assert long.train.to_dict() == cpu.train.to_dict() and long.workdir == "outputs/mqar_context"
  for task, t in (("mqar_kv8_t128", 128), ("mqar_kv8_t192", 192)):
    got = long.task_configs[task].to_dict()
    want = cpu.task_configs.mqar_kv8.to_dict()
    assert got["kwargs"].pop("seq_len") == t and want["kwargs"].pop("seq_len") == 64
    assert got == want, task
  long_swa = recall.build_model_config(
    swa_spec,
    vocab_size=256,
    max_len=192,
    model=recall.model_for_spec(long.model, long.model_overrides, swa_spec),
  )
  assert long_swa.sliding_window == 16 and long_swa.mixer == ("sliding_attention", "ovq_eq")

  # :window8 / :window32, the same models at T = 128 with another window: only the window and
  # the workdir differ from :context's T = 128 run.
  for variant, window in (("window8", 8), ("window32", 32)):
    w = mqar_config.get_config(variant)
    assert w.tasks == ("mqar_kv8_t128",) and w.workdir == f"outputs/mqar_{variant}"
    assert w.task_configs.mqar_kv8_t128.to_dict() == long.task_configs.mqar_kv8_t128.to_dict()
    assert w.models == long.models and w.train.to_dict() == long.train.to_dict()
    assert w.model_overrides.to_dict() == {s: {"sliding_window": window} for s in long.models}

  # :kv16 / :kv32, the same models at T = 128 with more pairs: only num_kv_pairs, the task's
  # name and the workdir differ from :context's T = 128 run.
  for variant, kv in (("kv16", 16), ("kv32", 32)):
    p = mqar_config.get_config(variant)
    assert p.tasks == (f"mqar_kv{kv}_t128",) and p.workdir == f"outputs/mqar_{variant}"
    got = p.task_configs[f"mqar_kv{kv}_t128"].to_dict()
    want = long.task_configs.mqar_kv8_t128.to_dict()
    assert got["kwargs"].pop("num_kv_pairs") == kv and want["kwargs"].pop("num_kv_pairs") == 8
    assert got == want, variant
    assert p.models == long.models and p.train.to_dict() == long.train.to_dict()
    assert p.model_overrides.to_dict() == long.model_overrides.to_dict()

  # :kv16_state, kv16's task with larger states: OVQ of 32 and 64 slots, GLA of the 64-slot
  # state (head dim 102: 102^2 = 10404 floats against 64 * 129 + 16 * 128 = 10304).
  big = mqar_config.get_config("kv16_state")
  assert big.task_configs.to_dict() == mqar_config.get_config("kv16").task_configs.to_dict()
  assert big.train.to_dict() == long.train.to_dict() and big.workdir == "outputs/mqar_kv16_state"
  sizes = {}
  for spec in big.models:
    mc = recall.build_model_config(
      spec,
      vocab_size=256,
      max_len=128,
      model=recall.model_for_spec(big.model, big.model_overrides, spec),
    )
    assert mc.sliding_window == 16 and mc.mixer[0] == "sliding_attention"
    cls = registry.MIXERS.get(mc.mixer[1])
    d = mc.head_dim
    sizes[spec] = cls.num_slots * (2 * d + 1) + cls.chunk_size * 2 * d if "ovq" in spec else d * d
  assert sizes == {
    "sliding_attention+ovq_s32@2": 6176,
    "sliding_attention+ovq_s64@2": 10304,
    "sliding_attention+gla_d102@2": 10404,
  }

  # :kv16_mix, kv16 trained on Zoology's kv = 4 / 8 / 16 mixture and tested on kv = 16 alone,
  # with full attention added as the upper bound; every other setting is kv16's.
  kv16, mix = mqar_config.get_config("kv16"), mqar_config.get_config("kv16_mix")
  assert mix.tasks == kv16.tasks and mix.workdir == "outputs/mqar_kv16_mix"
  got = mix.task_configs.mqar_kv16_t128.to_dict()
  assert tuple(got.pop("train_kwargs")["num_kv_pairs"]) == (4, 8, 16)
  assert got == kv16.task_configs.mqar_kv16_t128.to_dict()
  assert mix.models == ("attention@2", *kv16.models)
  assert mix.train.to_dict() == kv16.train.to_dict()
  assert mix.model_overrides.to_dict() == kv16.model_overrides.to_dict()
  train, test = recall.make_task_data(
    {
      **got,
      "name": "mqar",
      "train_kwargs": {"num_kv_pairs": (4, 8, 16)},
      "num_train": 30,
      "num_test": 6,
    },
    0,
  )
  assert sorted(set((train.targets >= 0).sum(axis=1))) == [4, 8, 16]
  assert set((test.targets >= 0).sum(axis=1)) == {16}
  mix32 = mqar_config.get_config("kv32_mix")
  assert mix32.tasks == ("mqar_kv32_t128",) and mix32.workdir == "outputs/mqar_kv32_mix"
  task32 = mix32.task_configs.mqar_kv32_t128
  assert tuple(task32.train_kwargs["num_kv_pairs"]) == (4, 8, 16, 32)
  assert task32.kwargs.num_kv_pairs == 32 and mix32.models == mix.models
  # :kv32_mix_state, kv32_mix's hybrid with 32 and 64 slots; :hybrid, the reproduction
  # suite's kv16_mix at 1200 steps without the window alone (its quick copy is tiny).
  state32 = mqar_config.get_config("kv32_mix_state")
  assert state32.task_configs.to_dict() == mix32.task_configs.to_dict()
  assert state32.models == ("sliding_attention+ovq_s32@2", "sliding_attention+ovq_s64@2")
  assert {k: v["num_slots"] for k, v in state32.mixer_variants.items()} == {
    "ovq_s32": 32,
    "ovq_s64": 64,
  }
  assert state32.train.num_steps == 1200 and state32.seeds == (0, 1, 2, 3, 4, 5)
  for name, want in (("hybrid", "kv16_mix"), ("hybrid_quick", "quick")):
    h = mqar_config.get_config(name)
    assert h.models == ("attention@2", swa_spec, "sliding_attention+gla@2") and h.seeds
    if name == "hybrid":
      assert h.task_configs.to_dict() == mix.task_configs.to_dict()
      assert h.train.to_dict() == {**mix.train.to_dict(), "num_steps": 1200}
    else:
      assert h.train.num_steps == mqar_config.get_config(want).train.num_steps
      assert h.model.hidden_size == 32 and h.task_configs.mqar_kv4_t32.num_train == 64


def test_monotone_attack_experiment_tiny(tmp_path, monkeypatch):
  config = monotone_config.get_config("quick")
  config.workdir = str(tmp_path)
  payload = _run_main(monotone_attack, config, monkeypatch)
  for name in ("results.md", "results.json", "attack.png", "CITATIONS.bib"):
    assert os.path.getsize(os.path.join(tmp_path, name)) > 0
  assert (
    "@misc{cooper2026monotonicity,"
    in pathlib.Path(os.path.join(tmp_path, "CITATIONS.bib")).read_text()
  )
  md = pathlib.Path(os.path.join(tmp_path, "results.md")).read_text()
  for name in ("pretrained", "baseline", "monotone"):
    assert f"| {name} |" in md
  assert "**UAT**" in md and "bootstrap" in md
  assert len(payload["per_seed"]) == 2
  for run in payload["per_seed"]:
    assert len(run["margin"]) == config.attack.num_examples
    for name in ("pretrained", "baseline", "monotone"):
      r = run[name]
      assert np.isfinite(r["clean_loss"]) and 0 <= r["clean_accuracy"] <= 1
      for mode in ("any", "meaning_preserving"):
        a = r[mode]
        assert 0 <= a["success_rate"] <= 1 and a["num_examples"] == 16
        assert 0 < a["mean_tokens_changed"] <= 5
        assert a["success_ci"][0] <= a["success_rate"] <= a["success_ci"][1]
      u = r["uat"]
      assert len(u["trigger"]) == config.uat.trigger_len and np.isfinite(u["mean_degradation"])
