"""Training: train state, the sharded exactly-accumulating step, SFT, recall-task training and
sweeps, metric writers."""

from reasoning_jax.train.step import (
  TrainState,
  abstract_train_state,
  init_train_state,
  make_train_step,
  sft_loss,
  state_shardings,
)
