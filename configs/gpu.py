"""One GPU (sized for an H100): more data, a wider graph model, bfloat16.

Not run here (no GPU in this project's CI); the sizes follow from the
measured configs/cpu.py step (3.2 ms on one H100, 22 GFLOP, README
"Accelerators"): 4x the batch and ~16x the FLOPs per example keep the GPU
busy, and the input pipeline reads pre-encoded examples (encoding/cache.py),
so one process feeds it.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.data.num_programs = 200_000  # ~9 min on 16 cores, ~420 MB.
  config.data.sampler.length = (2, 8)
  config.input.update(batch_size=128, max_rows=10)
  config.model.update(num_layers=6, num_heads=8, d_model=512, mlp_dim=2048,
                      graph_rounds=3, dropout_rate=0.0,
                      # Measured on one H100: 31 ms a step in float32, 438 ms
                      # in bfloat16 (the graph encoder's scatter-adds).
                      dtype="float32")
  config.steps = 100_000
  config.learning_rate = 3e-4
  config.warmup_steps = 2000
  config.log_every = 200
  config.eval_every = 5000
  config.eval_batches = 16
  config.checkpoint_every = 5000
  return config
