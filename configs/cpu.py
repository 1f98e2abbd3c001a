"""The accuracy benchmark (bench/accuracy.sh): <= 90 min on 2 CPU cores."""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.data.num_programs = 20_000
  config.data.sampler.length = (2, 6)  # The benchmark's held-out range.
  config.input.augment = "permute"  # Residual-basis invariance.
  config.steps = 5000
  config.eval_every = 1000
  config.checkpoint_every = 1000
  return config
