"""The README's main job: generate, train and evaluate in ~15 min on 2 CPU cores."""

import ml_collections

from configs import data
from encoding import graph, pipeline, weights
from meta_model import model


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0  # Parameter init and dropout keys.
  config.data_dir = ""  # Dataset directory; "" means WORKDIR/data.

  config.data = data.get_config()  # Generated when data_dir has no dataset.
  config.data.num_programs = 6000
  config.data.sampler.length = (2, 6)

  config.input = pipeline.default_input_config()
  config.input.encoder = "graph"  # The weight graph; "blocks" reads `blocks`.
  config.input.batch_size = 32
  config.input.max_rows = 8  # START + up to 6 instructions + END.
  config.graph = graph.default_graph_config()  # The graph encoder's sizes.
  # The block encoder's settings, read only with input.encoder="blocks".
  config.blocks = weights.default_blocks_config()
  config.blocks.update(max_blocks=512, buckets=(256, 512))

  # The input sizes (max_rows; with blocks, max_blocks, ...) are derived from
  # the encoder's settings where the model is built (meta_model/build.py).
  config.model = model.default_model_config()
  config.model.update(
      num_layers=3, num_heads=4, d_model=128, mlp_dim=256, dropout_rate=0.0)

  config.steps = 1000  # Optimizer steps (~0.4 s each on 2 idle CPU cores).
  config.learning_rate = 1e-3  # Peak, after warmup.
  config.warmup_steps = 50
  config.final_learning_rate_fraction = 0.05  # Cosine decays to this share.
  config.weight_decay = 0.01
  config.grad_clip_norm = 1.0
  config.grad_accumulation_steps = 1  # >1 averages gradients over steps.

  # Records over the encoder's size limits are dropped by the pipeline; the
  # first size_check_records training records are checked before training,
  # and a larger dropped share than this stops the run.
  config.size_check_records = 256
  config.max_dropped_share = 0.5
  # Seconds a process waits for the dataset other processes generate.
  config.data_wait_timeout_s = 3600.0

  config.log_every = 50  # Steps between train metric logs.
  config.eval_every = 300  # Steps between validation metrics.
  config.eval_batches = 4  # Validation batches per evaluation.
  config.checkpoint_every = 300  # Steps between checkpoints.
  config.checkpoints_to_keep = 2
  return config
