"""A Cloud TPU pod slice: run on every host with --multihost (docs/tpu.md)."""

import ml_collections

from configs import gpu


def get_config() -> ml_collections.ConfigDict:
  config = gpu.get_config()
  config.data.num_programs = 1_000_000
  config.input.batch_size = 64  # Per host; the global batch is this x hosts.
  config.model.update(num_layers=12, d_model=768, mlp_dim=3072)
  config.steps = 200_000
  return config
