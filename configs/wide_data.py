r"""Datasets of the wider program language, to measure the read-out decompiler.

  python -m rasp_gen.generate --config=configs/wide_data.py --out_dir=DIR \
      [--config.num_programs=500]

configs/data.py with its wider-language knobs on (rasp_gen/sampler.py's
docstring): random table functions and selector predicates, string
vocabularies, selectors shared by several Aggregates and SelectorWidths, and
programs of up to 16 instructions. Every record still compiles faithfully.
The meta-model's tokens cannot name a table, so training on such a dataset
drops (and counts) the records that hold one; the decompiler that reads
programs off the weights (readout/) is what these measure.
"""

import ml_collections

from configs import data


def get_config() -> ml_collections.ConfigDict:
  config = data.get_config()
  config.num_programs = 2_000
  sampler = config.sampler
  sampler.table_share = 0.5
  sampler.custom_select_share = 0.5
  sampler.string_vocab_share = 0.3
  sampler.reuse_select_share = 0.2
  sampler.length = (2, 16)
  # Above ~10 instructions, grow past dead code (configs/data.py), and keep
  # chained numerical SequenceMaps' value sets bounded.
  sampler.grow_past_dead_code = True
  sampler.max_numerical_product = 1024
  return config
