"""Head-role gate modules (LycheeDecode arXiv:2602.04541, DuoAttention arXiv:2410.10819):
parameter shapes and init, forced layer 0, roles, gradients reaching a and b through
`nnx.grad`, and DuoAttention rounding by fraction."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from reasoning_jax.layers.head_roles import DuoAttentionGates, HardKumaRoleGates
from reasoning_jax.ops.sparse_decode import expected_density


def test_hardkuma_params_sample_and_density():
  gates = HardKumaRoleGates(4, 3)
  for p in (gates.a, gates.b):
    assert isinstance(p, nnx.Param) and p.shape == (4, 3) and p.dtype == jnp.float32
    np.testing.assert_array_equal(p[...], np.ones((4, 3)))
  z = gates.sample(jax.random.key(0))
  assert z.shape == (4, 3) and z.dtype == jnp.float32
  np.testing.assert_array_equal(z[0], np.ones(3))
  assert float(z.min()) >= 0.0 and float(z.max()) <= 1.0
  # Uniform Kuma: 1 - P(z=0) = 11/12 everywhere.
  np.testing.assert_allclose(gates.expected_density(), 11 / 12, rtol=1e-6)
  gates.a[...] = gates.a[...].at[0].set(50.0)  # Layer 0 (forced) is left out of the density.
  np.testing.assert_allclose(gates.expected_density(), 11 / 12, rtol=1e-6)
  np.testing.assert_allclose(
    gates.expected_density(include_forced_layer=True), expected_density(gates.a[...], gates.b[...])
  )
  free = HardKumaRoleGates(2, 2, init=0.5, force_first_layer=False)
  np.testing.assert_array_equal(free.a[...], np.full((2, 2), 0.5))
  with pytest.raises(ValueError, match="num_layers"):
    HardKumaRoleGates(1, 2)


def test_hardkuma_roles():
  gates = HardKumaRoleGates(3, 2)
  # a = 1: Kuma mean 1 / (1 + b): b = 0.5 -> 2/3 retrieval, b = 2 -> 1/3 sparse.
  gates.b[...] = jnp.asarray([[2.0, 2.0], [0.5, 2.0], [2.0, 0.5]])
  roles = gates.roles()
  assert isinstance(roles, np.ndarray) and roles.dtype == bool
  np.testing.assert_array_equal(roles, [[True, True], [True, False], [False, True]])
  np.testing.assert_allclose(gates.kuma_mean()[1], [2 / 3, 1 / 3], rtol=1e-5)


def test_gradients_reach_a_and_b():
  gates = HardKumaRoleGates(4, 8, init=1.0)
  key = jax.random.key(7)
  weights = jnp.arange(1.0, 33.0).reshape(4, 8)
  z = gates.sample(key)
  grads = nnx.grad(lambda m: jnp.sum(m.sample(key) * weights))(gates)
  ga, gb = np.asarray(grads["a"][...]), np.asarray(grads["b"][...])
  assert ga.shape == gb.shape == (4, 8) and np.isfinite(ga).all() and np.isfinite(gb).all()
  assert (ga[0] == 0).all() and (gb[0] == 0).all()  # Forced layer: no gradient.
  interior = np.array((z > 0) & (z < 1))
  interior[0] = False
  assert interior.any() and (~interior[1:]).any()
  assert (ga[interior] != 0).all() and (gb[interior] != 0).all()
  clipped = ~interior
  assert (ga[clipped] == 0).all() and (gb[clipped] == 0).all()
  # The density penalty's gradient reaches every learnable gate.
  grads = nnx.grad(lambda m: m.expected_density())(gates)
  assert (np.asarray(grads["a"][...])[1:] != 0).all()


def test_duo_gates():
  gates = DuoAttentionGates(3, 2)
  assert isinstance(gates.alpha, nnx.Param) and gates.alpha.shape == (3, 2)
  np.testing.assert_array_equal(gates.alpha[...], np.ones((3, 2)))
  gates.alpha[...] = jnp.asarray([[0.9, 0.5], [0.5, -0.5], [0.2, 1.7]])
  np.testing.assert_allclose(gates.values(), [[0.9, 0.5], [0.5, 0.0], [0.2, 1.0]])
  np.testing.assert_allclose(gates.l1(), 4.3, rtol=1e-6)
  roles = gates.roles(fraction=0.5)  # 3 of 6: 1.7, 0.9, the first 0.5 (flat index 1).
  assert isinstance(roles, np.ndarray) and roles.dtype == bool
  np.testing.assert_array_equal(roles, [[True, True], [False, False], [False, True]])
  np.testing.assert_array_equal(
    gates.roles(threshold=0.5), [[True, True], [True, False], [False, True]]
  )
  with pytest.raises(ValueError, match="exactly one of threshold and fraction"):
    gates.roles()
