"""The meta-model a training config describes, built in one place.

The model's input sizes are not configured twice: `model_config` derives
them from the groups that produce the inputs, so an override such as
`--config.input.max_rows=10` changes the encoder and the model together:

  model.max_rows             = input.max_rows
  and with input.encoder="blocks" only:
  model.max_blocks           = blocks.max_blocks
  model.block_size           = blocks.block_size
  model.max_layers           = blocks.max_layers
  model.max_block_positions  = blocks' feature_bounds(...)["block_position"]
  model.num_block_kinds      = blocks' feature_bounds(...)["block_kind"]

The graph encoder's sizes live in the `graph` group, which the model reads
through `graph.feature_bounds`. A config (or an older run's config.json) may
still carry derived fields; a value that disagrees with the derived one is a
ValueError naming both.
"""

from typing import Any

import jax.numpy as jnp
import ml_collections
from flax import nnx

from encoding import graph, tokens, weights
from encoding.vocabulary import NA, PAD, PROGRAM_END, PROGRAM_START
from meta_model import model as model_lib

def derived_sizes(config: ml_collections.ConfigDict
                  ) -> dict[str, tuple[int, str]]:
  """Model size name -> (value, the setting it follows from)."""
  sizes = {"max_rows": (config.input.max_rows, "input.max_rows")}
  if config.input.encoder == "blocks":
    blocks = config.blocks
    bounds = weights.feature_bounds(blocks)
    sizes.update(
        max_blocks=(blocks.max_blocks, "blocks.max_blocks"),
        block_size=(blocks.block_size, "blocks.block_size"),
        max_layers=(blocks.max_layers, "blocks.max_layers"),
        max_block_positions=(bounds["block_position"],
                             "blocks (block_axis, max_d_model, ...)"),
        num_block_kinds=(bounds["block_kind"], "the block kinds"))
  return sizes


def model_config(config: ml_collections.ConfigDict
                 ) -> ml_collections.ConfigDict:
  """`config.model` with its input sizes derived (module docstring).

  Raises ValueError when a size set in `config.model` disagrees with the
  derived one.
  """
  model = config.model.to_dict()
  for name, (value, source) in derived_sizes(config).items():
    given = model.get(name)
    if given is not None and given != value:
      raise ValueError(f"model.{name}={given} disagrees with {value} from "
                       f"{source}; leave model.{name} unset, it is derived")
    model[name] = value
  return ml_collections.ConfigDict(model)


def make_model(config: ml_collections.ConfigDict,
               seed: int | None = None) -> model_lib.MetaModel:
  """An untrained MetaModel for the training config `config`."""
  vocabulary = tokens.vocabulary_for_rows(config.input.max_rows)
  graph_bounds = (graph.feature_bounds(config.graph)
                  if config.input.encoder == "graph" else None)
  return model_lib.MetaModel(
      model_config(config), vocabulary.size, vocabulary.column_masks,
      graph_bounds=graph_bounds,
      rngs=nnx.Rngs(config.seed if seed is None else seed))


def special_ids(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The token ids the loss and the decoders need, under their arg names:
  `start_row` (the PROGRAM_START row), `end_id`, `pad_id`, `na_id`."""
  ids = tokens.vocabulary_for_rows(config.input.max_rows).ids
  return {"start_row": jnp.asarray([ids[PROGRAM_START]] + [ids[NA]] * 4,
                                   jnp.int32),
          "end_id": ids[PROGRAM_END], "pad_id": ids[PAD], "na_id": ids[NA]}
