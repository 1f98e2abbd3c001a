"""readout.variables: which directions are one variable."""

import numpy as np
import pytest
from tracr.rasp import rasp

from compiled import params as params_lib
from readout import variables
from readout.errors import ReadoutError
from readout_helpers import started


def test_disjoint_sets_join_and_group():
  sets = variables.DisjointSets(range(5))
  sets.join([0, 2])
  sets.join([2, 4])
  assert sorted(sorted(g) for g in sets.groups()) == [[0, 2, 4], [1], [3]]


def _everyone_reads(dims):
  return {d: frozenset({("mlp", 1)}) for d in dims}


def test_one_hot_groups_split_directions_on_together_per_input():
  # Directions 10, 11 are one variable (exactly one on per row), as are 12,
  # 13; no single split of all four works.
  on_NxO = np.array([[1, 0, 1, 0], [0, 1, 1, 0], [1, 0, 0, 1]], bool)
  dims = [10, 11, 12, 13]
  groups = variables.one_hot_groups(dims, on_NxO, _everyone_reads(dims),
                                    {d: d for d in dims})
  assert sorted(sorted(g) for g in groups) == [[10, 11], [12, 13]]


def test_one_hot_groups_refuse_directions_on_together_yet_read_together():
  on_NxO = np.array([[1, 1], [0, 0]], bool)
  with pytest.raises(ReadoutError, match="do not split"):
    variables.one_hot_groups([1, 2], on_NxO, _everyone_reads([1, 2]),
                             {1: 1, 2: 1})


def test_one_hot_groups_give_up_past_their_step_limit():
  dims = list(range(12))
  on_NxO = np.eye(12, dtype=bool)
  with pytest.raises(ReadoutError, match="too many"):
    variables.one_hot_groups(dims, on_NxO, _everyone_reads(dims),
                             {d: d for d in dims}, max_steps=3)


def test_a_heads_query_key_and_value_each_read_one_variable():
  state = started(rasp.Aggregate(rasp.Select(rasp.tokens, rasp.indices,
                                             rasp.Comparison.EQ),
                                 rasp.tokens), {0, 1, 2}, 3)
  token_dims = state.variables["tokens"].dims
  index_dims = state.variables["indices"].dims
  together = state.read_together
  assert len({together[d] for d in token_dims}) == 1
  assert len({together[d] for d in index_dims}) == 1
  assert together[token_dims[0]] != together[index_dims[0]]
  # tokens are the head's value; indices only its query.
  assert all(("head", 0, 0) in state.value_readers[d] for d in token_dims)
  assert not any(state.value_readers[d] for d in index_dims)


def test_directions_no_input_produces_are_not_written():
  # tracr gives (x, y) with x != y of one variable a direction; it stays 0.
  same = rasp.SequenceMap(lambda x, y: (x, y), rasp.tokens, rasp.tokens)
  pair = rasp.Map(lambda p: p[0] == p[1], same)
  state = started(pair, {1, 2}, 3)
  d_model = state.layout.d_model
  assert len(state.written) < d_model
  assert state.live_neurons[0].size < state.params[
      params_lib.mlp_key(0, "linear_1")]["w"].shape[1]
