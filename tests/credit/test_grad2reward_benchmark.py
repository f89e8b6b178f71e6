"""Smoke test of benchmarks/grad2reward.py at its smallest settings (a 1-layer random judge)."""

import importlib.util
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_layers": 1, "num_heads": 2}
TINY.update({"num_kv_heads": 1, "head_dim": 16})


def test_benchmark_runs_and_forces_the_satisfied_set(tmp_path):
  spec = importlib.util.spec_from_file_location(
    "grad2reward_benchmark", os.path.join(ROOT, "benchmarks", "grad2reward.py")
  )
  bench = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(bench)
  out = tmp_path / "g2r.json"
  argv = ["--batch=1", "--group=2", "--new-tokens=4", "--repeats=1", "--satisfied=0.5"]
  results = bench.main([*argv, f"--overrides={json.dumps(TINY)}", f"--out={out}"])
  assert json.loads(out.read_text())["ratios"] == results["ratios"]
  assert results["rollout"]["generated_tokens"] == 2 * 4
  for mode in ("dense_batched", "dense_looped"):
    assert results[mode]["judge_pairs"] == 8  # 2 rows x 4 rubric items.
    assert results[mode]["attributed_pairs"] == 4  # The forced satisfied fraction.
    assert results[mode]["attribution_real"] == results["dense_batched"]["attribution_real"]
  assert "attributed_pairs" not in results["sparse"]
