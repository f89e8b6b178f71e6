"""Shared fixtures for reasoning_jax.data tests: tiny datasets built once per session."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def fixtures_dir() -> str:
  """`tests/data/fixtures` (GSM8K- and MATH-style JSONL files)."""
  return os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("tfds")


@pytest.fixture(scope="session")
def arithmetic_builder(tfds_dir):
  """A prepared `arithmetic/easy` builder with 64 train and 16 test examples."""
  from reasoning_jax.data import build_dataset

  return build_dataset("arithmetic", tfds_dir, config="easy", seed=0, num_train=64, num_test=16)
