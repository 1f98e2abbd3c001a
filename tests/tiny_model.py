"""A tiny model config and random, well-formed batches for the model tests.

The vocabulary is made up (PAD, NA, START, END, then operators and other
tokens); it only has to respect the batch contract of the encoding package.
"""

import ml_collections
import numpy as np

from meta_model.model import NUM_COLUMNS, default_model_config

PAD, NA, START, END = 0, 1, 2, 3
START_ROW = np.array([START, NA, NA, NA, NA], np.int32)
# As in real data (encoding/tokens.py): PROGRAM_END's other columns are NA.
END_ROW = np.array([END, NA, NA, NA, NA], np.int32)


def tiny_config(**overrides) -> ml_collections.ConfigDict:
  config = default_model_config()
  config.update(num_layers=2, num_heads=2, d_model=32, mlp_dim=64,
                max_blocks=6, max_rows=6, max_layers=3, num_block_kinds=4,
                max_block_positions=4, block_size=8)
  config.update(overrides)
  return config


def column_masks(vocab_size: int, rng: np.random.Generator) -> np.ndarray:
  """Column 0: END and four operators; others: PAD, NA and random tokens."""
  masks_5xV = np.zeros((NUM_COLUMNS, vocab_size), bool)
  masks_5xV[0, [END, 4, 5, 6, 7]] = True
  masks_5xV[1:, [PAD, NA]] = True
  masks_5xV[1:, 8:] = rng.random((NUM_COLUMNS - 1, vocab_size - 8)) < 0.6
  return masks_5xV


def random_batch(config: ml_collections.ConfigDict, masks_5xV: np.ndarray,
                 batch_size: int, rng: np.random.Generator) -> dict:
  """Blocks of random values and programs of random legal rows."""
  b, n, r = batch_size, config.max_blocks, config.max_rows
  ints = lambda high, shape: rng.integers(0, high, shape).astype(np.int32)
  block_mask = np.arange(n) < rng.integers(1, n + 1, (b, 1))
  program = np.full((b, r, NUM_COLUMNS), PAD, np.int32)
  program_mask = np.zeros((b, r), bool)
  instruction_5xV = masks_5xV.copy()
  instruction_5xV[0, END] = False
  for i in range(b):
    length = rng.integers(1, r - 1)  # Instructions; START and END fit too.
    program[i, 0] = START_ROW
    for row in range(1, length + 1):
      program[i, row] = [rng.choice(np.flatnonzero(m)) for m in instruction_5xV]
    program[i, length + 1] = END_ROW
    program_mask[i, 1:length + 2] = True
  return {
      "blocks": rng.normal(size=(b, n, config.block_size)).astype(np.float32),
      "block_layer": ints(config.max_layers + 2, (b, n)),
      "block_kind": ints(config.num_block_kinds, (b, n)),
      "block_position": ints(config.max_block_positions, (b, n)),
      "block_is_last": ints(2, (b, n)),
      "block_shape": 1 + ints(512, (b, n, 2)),
      "block_mask": block_mask,
      "program": program,
      "program_mask": program_mask,
  }
