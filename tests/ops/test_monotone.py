"""Monotone FFN op (arXiv:2602.02686): spec 5.4 hand case, order preservation on random
ordered pairs, non-negative Jacobian, init round trip, the gated-SiLU negative control,
activation checks and input validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reasoning_jax.ops.monotone import (
  MONOTONE_ACTIVATIONS,
  check_activation,
  init_raw,
  inverse_softplus,
  monotone_ffn,
  monotone_weight_l2,
  nonnegative_weight,
  probe_monotone,
  raw_from_dense,
)

H, I = 6, 10


def _normal(seed, shape):
  return jnp.asarray(np.random.RandomState(seed).standard_normal(shape), jnp.float32)


def _weights(seed=0, gated=False, h=H, i=I, scale=0.5):
  w = lambda s, shape: nonnegative_weight(_normal(s, shape) * scale)
  out = dict(
    up=w(seed, (h, i)),
    down=w(seed + 1, (i, h)),
    up_bias=_normal(seed + 2, (i,)),
    down_bias=_normal(seed + 3, (h,)),
  )
  if gated:
    out.update(gate=w(seed + 4, (h, i)), gate_bias=_normal(seed + 5, (i,)))
  return out


def test_hand_case():
  """Spec 5.4(f): W1 = [[1, 0.5]], b1 = -1, ReLU, W2 = [[2]] (kernels stored [in, out])."""
  up, down = jnp.array([[1.0], [0.5]]), jnp.array([[2.0, 0.0]])  # out padded to H = 2
  f = lambda x: monotone_ffn(jnp.array(x), up, down, up_bias=jnp.array([-1.0]))[0]
  assert float(f([1.0, 1.0])) == 1.0
  assert float(f([2.0, 1.0])) == 3.0
  assert float(f([0.0, 0.0])) == 0.0


CASES = [
  ("relu", False),
  ("softplus", False),
  ("sigmoid", False),
  ("tanh", False),
  ("identity", False),
  ("relu", True),
  ("softplus", True),
  ("sigmoid", True),
]


@pytest.mark.parametrize("activation,gated", CASES)
def test_order_preserved_on_random_pairs(activation, gated):
  """Spec 5.4(a): FFN(x) <= FFN(x + |delta|) elementwise for 10^4 random ordered pairs."""
  w = _weights(gated=gated)
  fn = jax.jit(lambda x: monotone_ffn(x, activation=activation, **w))
  x = _normal(1, (64, H)) * 2
  assert probe_monotone(fn, x, jax.random.key(2), num_pairs=10_000, scale=2.0, atol=1e-5) == 0


@pytest.mark.parametrize("activation,gated", CASES[:2] + CASES[5:6])
def test_jacobian_nonnegative(activation, gated):
  """Spec 5.4(b): jax.jacfwd(FFN)(x) >= 0 entrywise, at many points."""
  w = _weights(gated=gated)
  jac = jax.jit(jax.vmap(jax.jacfwd(lambda x: monotone_ffn(x, activation=activation, **w))))
  j = np.asarray(jac(_normal(3, (200, H)) * 2))
  assert j.shape == (200, H, H)
  assert j.min() >= 0.0 and j.max() > 0.0


def test_gated_silu_with_nonnegative_weights_is_not_monotone():
  """Spec 5.4(d), negative control: SwiGLU-style silu(x W_g) * (x W_u) with W >= 0."""
  w = _weights(gated=True, scale=1.0)

  def swiglu(x):
    return (jax.nn.silu(x @ w["gate"]) * (x @ w["up"])) @ w["down"]

  x = _normal(4, (64, H)) * 2
  assert probe_monotone(jax.jit(swiglu), x, jax.random.key(5), num_pairs=2_000, scale=2.0) > 0
  j = jax.jit(jax.vmap(jax.jacfwd(swiglu)))(x)
  assert float(j.min()) < 0


def test_init_round_trip_and_stable_inverse():
  """Spec 5.4(c): softplus(softplus^-1(|W| + eps)) ~ |W| (atol 2e-4); signs are discarded."""
  w = _normal(6, (50, 40)) * 0.05
  raw = raw_from_dense(w)
  assert raw.dtype == w.dtype
  np.testing.assert_allclose(nonnegative_weight(raw), jnp.abs(w), atol=2e-4)
  x = jnp.array([1e-6, 1e-4, 0.02, 1.0, 30.0, 80.0])
  inv = inverse_softplus(x)
  assert np.all(np.isfinite(inv))
  np.testing.assert_allclose(jax.nn.softplus(inv), x, rtol=1e-5)
  assert abs(float(inverse_softplus(1e-4 + 1e-4)) - np.log(np.expm1(2e-4))) < 1e-3  # ~ -8.5
  fresh = nonnegative_weight(init_raw(jax.random.key(7), (256, 256), std=0.02))
  assert float(fresh.min()) >= 1e-4 - 1e-7
  assert abs(float(fresh.mean()) - (0.02 * np.sqrt(2 / np.pi) + 1e-4)) < 1e-3
  with pytest.raises(ValueError, match="eps must be > 0"):
    raw_from_dense(w, eps=0.0)


def test_weight_l2():
  raw = [jnp.zeros((2, 3)), jnp.full((4,), 1.0)]
  expected = 0.5 * (6 * np.log(2) ** 2 + 4 * np.log1p(np.e) ** 2)
  np.testing.assert_allclose(monotone_weight_l2(raw), expected, rtol=1e-6)


def test_activation_checks():
  assert set(MONOTONE_ACTIVATIONS.names()) >= {"relu", "softplus", "sigmoid", "tanh"}
  for name in ("silu", "gelu", "swish"):
    with pytest.raises(ValueError, match="not monotone"):
      check_activation(name)
  with pytest.raises(ValueError, match="not a registered monotone activation"):
    check_activation("cube")
  with pytest.raises(ValueError, match="gated product is only monotone"):
    check_activation("tanh", gated=True)
  assert check_activation("relu", gated=True) == "relu"


def test_bad_inputs_raise():
  w = _weights()
  x = jnp.ones((3, H))
  with pytest.raises(ValueError, match="negative entries"):
    monotone_ffn(x, -w["up"], w["down"])
  with pytest.raises(TypeError, match="dtype"):
    monotone_ffn(x.astype(jnp.bfloat16), w["up"], w["down"])
  with pytest.raises(ValueError, match=r"up must be \[H, I\] with H = 5"):
    monotone_ffn(jnp.ones((3, 5)), w["up"], w["down"])
  with pytest.raises(ValueError, match=r"down must be \[I, H\]"):
    monotone_ffn(x, w["up"], w["down"].T)
  with pytest.raises(ValueError, match="gate_bias given without gate"):
    monotone_ffn(x, w["up"], w["down"], gate_bias=jnp.zeros(I))
  with pytest.raises(ValueError, match="not monotone"):
    monotone_ffn(x, w["up"], w["down"], activation="gelu")
