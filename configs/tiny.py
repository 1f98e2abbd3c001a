"""Seconds-long runs for tests: a few dozen programs, a tiny model."""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.data.num_programs = 40
  config.data.shard_size = 20
  config.data.num_workers = 1
  config.data.sampler.length = (2, 4)
  config.data.validation_fraction = 0.2
  config.data.test_fraction = 0.2
  config.input.batch_size = 8
  config.input.max_rows = 6
  config.input.read_threads = 2
  config.input.read_buffer_size = 8
  config.model.update(num_layers=1, num_heads=2, d_model=32, mlp_dim=64)
  config.steps = 6
  config.warmup_steps = 2
  config.log_every = 2
  config.eval_every = 6
  config.eval_batches = 1
  config.checkpoint_every = 3
  return config
