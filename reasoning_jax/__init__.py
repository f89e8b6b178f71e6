"""reasoning_jax: reference JAX/Flax implementations of reasoning research.

Importing the package never imports torch or tensorflow.
"""

__version__ = "0.1.0"
