"""The meta-model a training config describes, built in one place.

The model's input sizes are not configured twice: `model_config` derives
them from the groups that produce the inputs, so an override such as
`--config.weights.max_blocks=1024` or `--config.input.max_rows=10` changes
the encoder and the model together:

  model.max_rows             = input.max_rows
  model.max_blocks           = weights.max_blocks
  model.block_size           = weights.block_size
  model.max_layers           = weights.max_layers
  model.max_block_positions  = weights.feature_bounds(...)["block_position"]

A config (or an older run's config.json) may still carry these fields; a
value that disagrees with the derived one is a ValueError naming both.
"""

from typing import Any

import jax.numpy as jnp
import ml_collections
from flax import nnx

from encoding import graph, tokens, weights
from encoding.vocabulary import NA, PAD, PROGRAM_END, PROGRAM_START
from meta_model import model as model_lib

DERIVED_SIZES = ("max_rows", "max_blocks", "block_size", "max_layers",
                 "max_block_positions")


def derived_sizes(config: ml_collections.ConfigDict) -> dict[str, int]:
  """The model sizes that follow from the `input` and `weights` groups."""
  return {
      "max_rows": config.input.max_rows,
      "max_blocks": config.weights.max_blocks,
      "block_size": config.weights.block_size,
      "max_layers": config.weights.max_layers,
      "max_block_positions":
          weights.feature_bounds(config.weights)["block_position"],
  }


def model_config(config: ml_collections.ConfigDict
                 ) -> ml_collections.ConfigDict:
  """`config.model` with its input sizes derived (module docstring).

  Raises ValueError when a size set in `config.model` disagrees with the
  derived one, or `model.num_block_kinds` is below the encoder's bound.
  """
  model = ml_collections.ConfigDict(config.model.to_dict())
  derived = derived_sizes(config)
  source = {"max_rows": "input.max_rows", "max_blocks": "weights.max_blocks",
            "block_size": "weights.block_size",
            "max_layers": "weights.max_layers",
            "max_block_positions": "weights (block_axis, max_d_model, ...)"}
  for name, value in derived.items():
    given = model.get(name)
    if given is not None and given != value:
      raise ValueError(f"model.{name}={given} disagrees with {value} from "
                       f"{source[name]}; leave model.{name} unset, it is "
                       "derived")
  kinds = weights.feature_bounds(config.weights)["block_kind"]
  if model.get("num_block_kinds", kinds) < kinds:
    raise ValueError(f"model.num_block_kinds={model.num_block_kinds} is "
                     f"below the {kinds} block kinds the encoder produces")
  model.update(derived)
  return model


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
