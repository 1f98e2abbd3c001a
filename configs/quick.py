"""Iterating on the meta-model: <= 20 min end to end on 2 CPU cores.

Data, training and evaluation of held-out programs of 2-6 instructions, the
range of configs/cpu.py, at a fraction of its budget. The variants of the
README's comparison table are this config with overrides on the command line
(e.g. --config.input.encoder=blocks --config.blocks.augment=permute).
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.data.num_programs = 12_000
  config.data.sampler.length = (2, 6)  # The benchmark's held-out range.
  config.steps = 1500
  config.warmup_steps = 100
  config.log_every = 100
  config.eval_every = 500
  config.checkpoint_every = 500
  return config
