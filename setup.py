"""reasoning_jax: reference JAX/Flax implementations of reasoning research."""

from setuptools import find_packages, setup

setup(
  name="reasoning-jax",
  version="0.1.0",
  description=(
    "Reference JAX/Flax implementations of reasoning research: RL losses, "
    "memory layers with Pallas kernels, inference methods, and a Llama/Qwen zoo."
  ),
  long_description=open("README.md", encoding="utf-8").read(),
  long_description_content_type="text/markdown",
  packages=find_packages(
    include=["reasoning_jax", "reasoning_jax.*", "pallas_kernels", "pallas_kernels.*"]
  ),
  # The bibliography behind reasoning_jax.citations (docs/references.bib links to it).
  package_data={"reasoning_jax": ["references.bib"]},
  python_requires=">=3.11",
  install_requires=[
    "jax>=0.10.2",
    "flax>=0.12.8",
    "optax>=0.2.5",
    "chex>=0.1.90",
    "absl-py>=2.1",
    "ml-collections>=1.0",
    "numpy>=2.0",
    "safetensors>=0.5",  # HF checkpoint I/O (numpy backend, bf16 via ml_dtypes).
    "tokenizers>=0.21",  # Local tokenizer.json files.
    "jinja2>=3.1",  # Chat templates, rendered in a sandbox as transformers does.
    "orbax-checkpoint>=0.12.8",  # Checkpoints (v1 API).
    "grain>=0.2.18",  # Input pipelines.
    "tensorflow-datasets>=4.9.10",  # Builders + ArrayRecord data sources; no TensorFlow.
    "array_record>=0.8.6",
    "tensorboardX>=2.6",  # TensorBoard event files without TensorFlow.
    "tqdm>=4.66",
    "matplotlib>=3.8",
    # ROSA's suffix automaton on the host: compiled loops and a thread pool over routes
    # without a compiler at install time (wheels for every supported Python).
    "numba>=0.61",
    # InfMem's in-document retrieval: BM25 over sparse matrices (maintained, numpy only),
    # fast enough to index a million-token document's units in well under a second.
    "bm25s>=0.2.10",
  ],
  extras_require={
    # nbclient + nbformat + ipykernel: tests/test_notebooks.py executes colab/*.ipynb.
    # import-linter and ruff (pinned): the import contracts and lint/format rules of
    # pyproject.toml, checked by tests/test_house.py and by .ci/run.
    "test": [
      "pytest>=8",
      "pytest-xdist>=3.5",
      "hypothesis>=6.100",
      "nbclient>=0.10",
      "nbformat>=5.10",
      "ipykernel>=6.29",
      "import-linter==2.16",
      "ruff==0.17.5",
    ],
    # Reference implementations for parity tests. torch==2.13.0 is a CPU wheel for
    # Python 3.11 here; on other Pythons pip would fetch a multi-GB CUDA build.
    "hf": ["torch==2.13.0", "transformers>=5.0,<6", "safetensors>=0.5"],
    "notebook": ["jupyter", "nbclient>=0.10", "ipykernel", "matplotlib>=3.8"],
    # The documentation site (docs/): `python -m sphinx -W -b html docs docs/_build`.
    # cffconvert (CITATION.cff validation) is not here: 2.0.0 pins jsonschema 3.2, which the
    # test extra's nbformat outgrew; .ci/run installs it in an environment of its own.
    "docs": ["sphinx>=9,<10", "myst-nb>=1.4,<2", "sphinx-book-theme>=1.4,<2"],
  },
  license="Apache-2.0",
  license_files=["LICENSE"],  # The Apache License 2.0 text, shipped in the dist-info.
  classifiers=[
    "Programming Language :: Python :: 3",
    "Programming Language :: Python :: 3.11",
    "Programming Language :: Python :: 3.12",
  ],
)
