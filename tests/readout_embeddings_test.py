"""readout.embeddings: `one`, BOS, tokens and indices off the embeddings."""

import dataclasses

import numpy as np
import pytest
from tracr.rasp import rasp

from compiled import params as params_lib
from readout import embeddings
from readout.errors import ReadoutError
from readout_helpers import compile_model


def _shift():  # Reads tokens and indices; its Aggregate needs `one`.
  return rasp.Aggregate(rasp.Select(rasp.indices, rasp.indices,
                                    rasp.Comparison.EQ), rasp.tokens)


def test_reads_one_bos_tokens_and_indices():
  model = compile_model(_shift(), {"a", "b", "c"}, 4)
  params = embeddings.as_float_params(model)
  read = embeddings.read_embeddings(params, model)
  token_VxD = params["token_embed"]["embeddings"]
  assert np.all(token_VxD[:, read.one] == 1)
  assert read.token_values == ("a", "b", "c")
  assert read.index_values == (0, 1, 2, 3)
  dims = set(read.token_dims) | set(read.index_dims) | {read.one, read.bos}
  assert len(dims) == 3 + 4 + 2  # All distinct.
  bos_row = model.input_tokens.index(model.compiler_bos)
  assert token_VxD[bos_row, read.bos] == 1


def test_a_model_without_one_gets_a_direction_nothing_reads():
  model = compile_model(rasp.Map(lambda x: x == "a", rasp.tokens),
                        {"a", "b"}, 3)
  width = model.params["token_embed"]["embeddings"].shape[1]
  params = embeddings.as_float_params(model)
  assert params["token_embed"]["embeddings"].shape[1] == width + 1
  first_DxM = params[params_lib.mlp_key(0, "linear_1")]["w"]
  assert first_DxM.shape[0] == width + 1 and not first_DxM[-1].any()
  assert embeddings.read_embeddings(params, model).one == width


def test_a_token_writing_two_directions_is_refused():
  model = compile_model(_shift(), {"a", "b"}, 3)
  params = embeddings.as_float_params(model)
  token_VxD = params["token_embed"]["embeddings"].copy()
  row = model.input_tokens.index("a")
  token_VxD[row, np.flatnonzero(token_VxD[row] == 0)[0]] = 1
  params = dict(params, token_embed={"embeddings": token_VxD})
  with pytest.raises(ReadoutError, match="directions besides 'one'"):
    embeddings.read_embeddings(params, dataclasses.replace(model))
