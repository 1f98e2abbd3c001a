"""One GPU: more data, a larger model, bfloat16 compute."""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.data.num_programs = 200_000
  config.data.sampler.length = (2, 8)
  config.weights.max_blocks = 1024
  config.input.update(batch_size=128, max_rows=10, block_buckets=(512, 1024),
                      augment="permute", num_workers=8)
  config.model.update(num_layers=8, num_heads=8, d_model=512, mlp_dim=2048,
                      dropout_rate=0.1, dtype="bfloat16")
  config.steps = 100_000
  config.learning_rate = 3e-4
  config.warmup_steps = 2000
  config.log_every = 100
  config.eval_every = 5000
  config.eval_batches = 16
  config.checkpoint_every = 5000
  return config
