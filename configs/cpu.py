"""The accuracy benchmark (bench/accuracy.sh): <= 90 min on 2 CPU cores.

The weight-graph encoder (configs/default.py, canonical labels) with more
data and steps: ~4-8 min of data generation, ~35-40 min of training on 2
cores, then held-out metrics on 300 test programs.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.data.num_programs = 24_000
  config.data.sampler.length = (2, 6)  # The benchmark's held-out range.
  config.steps = 5000  # ~0.4 s each on 2 idle cores.
  config.warmup_steps = 300
  config.log_every = 100
  config.eval_every = 1000
  config.checkpoint_every = 1000
  return config
