"""Test-wide setup: 8 host CPU devices for every test process.

Multi-device tests need the host device count fixed before JAX initialises its
backend; under pytest-xdist one worker runs many modules, so a per-module flag
would depend on test order. Setting it here, once, is order-independent.
"""

import os

_FLAG = "--xla_force_host_platform_device_count=8"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
