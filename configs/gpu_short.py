"""configs/gpu.py in one 10-minute device run, data generation included.

50,000 programs (~2.5 min on 16 cores) and 20,000 steps of gpu.py's model,
for a first look at a GPU machine before the long run.
"""

import ml_collections

from configs import gpu


def get_config() -> ml_collections.ConfigDict:
  config = gpu.get_config()
  config.data.num_programs = 50_000
  config.steps = 20_000
  config.warmup_steps = 1000
  config.eval_every = 2000
  config.checkpoint_every = 5000
  return config
