"""Pass 2: which residual directions belong together as one variable.

Each direction belongs to the module that first writes it. A head writes one
variable; a layer's MLP may write several, split by which output directions
light up together when the MLP is run on every combination of its inputs'
values (`one_hot_groups`), constrained by how the directions are read: a
head reads one variable as query, one as key and one as value, the output
decoding reads one, a categorical Map's neuron reads one (`read_together`),
and every module that reads a variable's value reads all of its directions
(`value_readers`). `live_parts` finds the directions and neurons that can
carry anything at all.
"""

from typing import Iterable, Optional, Sequence

import numpy as np

from compiled import params as params_lib
from readout.errors import ReadoutError
from readout.state import ZERO, Head, Params

# Search steps before `one_hot_groups` gives up.
ONE_HOT_SEARCH_STEPS = 20_000


class DisjointSets:
  """Union-find: which items have been joined into one class."""

  def __init__(self, items: Iterable[int]):
    self.parent = {int(i): int(i) for i in items}

  def root(self, item: int) -> int:
    while self.parent[item] != item:
      self.parent[item] = self.parent[self.parent[item]]
      item = self.parent[item]
    return item

  def join(self, items: Sequence[int]) -> None:
    for item in items[1:]:
      self.parent[self.root(item)] = self.root(items[0])

  def groups(self) -> list[list[int]]:
    by_root: dict[int, list[int]] = {}
    for item in self.parent:
      by_root.setdefault(self.root(item), []).append(item)
    return list(by_root.values())


def live_parts(params: Params, num_layers: int, one: int
               ) -> tuple[set[int], dict[int, np.ndarray]]:
  """The directions something writes, and each layer's MLP neurons that
  can fire. tracr gives every value in a value set a direction, also
  values no input produces (a SequenceMap's pair (x, y) of one variable
  with x != y); those directions stay 0, and neurons that need one of
  them (a SequenceMap's pair neuron: 1 + 1 - 1 > 0) never fire."""
  embeddings = np.concatenate([params["token_embed"]["embeddings"],
                               params["pos_embed"]["embeddings"]])
  written = np.abs(embeddings).max(0) > ZERO
  live_neurons = {}
  for layer in range(num_layers):
    written |= np.abs(params[params_lib.attn_key(
        layer, "linear")]["w"]).max(0) > ZERO
    first_DxM, second_MxD = (params[params_lib.mlp_key(layer, n)]["w"]
                             for n in ("linear_1", "linear_2"))
    reads_dead = (np.abs(first_DxM[~written]) > ZERO).any(0)
    best_case = (np.maximum(first_DxM[written], 0).sum(0)
                 - np.maximum(first_DxM[one], 0) + first_DxM[one])
    can_fire = ((np.abs(first_DxM) > ZERO).any(0)
                & (~reads_dead | (best_case > ZERO)))
    live_neurons[layer] = np.flatnonzero(can_fire)
    written |= np.abs(second_MxD[can_fire]).max(0, initial=0) > ZERO
  return set(np.flatnonzero(written).tolist()), live_neurons


def read_together(params: Params, layer_heads: list[list[Head]],
                  output_dims: Sequence[int], one: int, bos: int
                  ) -> dict[int, int]:
  """Per direction, the root of its class of directions that must be one
  variable: a head's query, key and value each read one variable, the
  output decoding reads one, and a categorical Map's neuron (weights all
  +1, no bias) reads one."""
  d_model = params["token_embed"]["embeddings"].shape[1]
  classes = DisjointSets(range(d_model))
  join = lambda dims: classes.join(
      [int(d) for d in dims if d not in (one, bos)])
  for layer, heads in enumerate(layer_heads):
    for head in heads:
      for matrix, axis in ((head.query_key_DxD, 1), (head.query_key_DxD, 0),
                           (head.value_output_DxD, 1)):
        join(np.flatnonzero(np.abs(matrix).max(axis) > ZERO))
    first_DxM = params[params_lib.mlp_key(layer, "linear_1")]["w"]
    for column in first_DxM.T:
      read = np.flatnonzero(np.abs(column) > ZERO)
      if (len(read) > 1 and one not in read
          and np.all(np.abs(column[read] - 1) < 1e-4)):
        join(read)
  join(list(output_dims))
  return {d: classes.root(d) for d in range(d_model)}


def value_readers(params: Params, layer_heads: list[list[Head]],
                  output_dims: Sequence[int]) -> dict[int, frozenset]:
  """Per direction, the modules that read it as a value: ("head", layer,
  index), ("mlp", layer), ("output",). Queries and keys may read only some
  of a variable's directions, so they do not count."""
  d_model = params["token_embed"]["embeddings"].shape[1]
  readers: dict[int, set] = {d: set() for d in range(d_model)}
  for layer, heads in enumerate(layer_heads):
    for index, head in enumerate(heads):
      for dim in np.flatnonzero(np.abs(head.value_output_DxD).max(1) > ZERO):
        readers[int(dim)].add(("head", layer, index))
    first_DxM = params[params_lib.mlp_key(layer, "linear_1")]["w"]
    for dim in np.flatnonzero(np.abs(first_DxM).max(1) > ZERO):
      readers[int(dim)].add(("mlp", layer))
  for dim in output_dims:
    readers[dim].add(("output",))
  return {d: frozenset(r) for d, r in readers.items()}


def neuron_components(neurons: np.ndarray,
                      writes_MxD: np.ndarray) -> list[list[int]]:
  """`neurons` joined into groups by the directions they write."""
  classes = DisjointSets(neurons)
  for dim in np.flatnonzero(writes_MxD[neurons].any(0)):
    classes.join([int(n) for n in neurons if writes_MxD[n, dim]])
  return classes.groups()


def readers_nested(first: frozenset, second: frozenset) -> bool:
  """Whether one reader set holds the other: a numerical Aggregate of a
  categorical variable reads only the directions of nonzero values, so one
  variable's readers may nest."""
  return first <= second or second <= first


def one_hot_groups(dims: list[int], on_NxO: np.ndarray,
                   readers: dict[int, frozenset],
                   together: dict[int, int],
                   max_steps: int = ONE_HOT_SEARCH_STEPS,
                   none_rows: bool = False) -> list[list[int]]:
  """Splits directions `dims` into categorical variables.

  `on_NxO[n, o]`: direction `dims[o]` is on for input combination n. In a
  categorical variable of several directions each combination turns on
  exactly one; directions read together (`together`) are one variable; every
  module reading a variable's value reads all of it (`readers`, up to
  nesting). A direction left alone may be sometimes off (a numerical 0/1
  variable). Depth-first search over the classes of `together`, joining
  before opening a new group; ReadoutError when none splits them or the
  search runs past `max_steps`. With `none_rows`, a combination that turns
  on no direction at all is a None value (tracr's MLP writes nothing for an
  input its function maps to None): exactly one on is required elsewhere.
  """
  some_on_N = on_NxO.any(1) if none_rows else np.ones(len(on_NxO), bool)
  if not dims:
    return []
  classes: dict[int, list[int]] = {}
  for column, dim in enumerate(dims):
    classes.setdefault(together[dim], []).append(column)
  blocks = sorted(classes.values(), key=lambda c: on_NxO[:, c].sum(1).tobytes())
  patterns = [on_NxO[:, block].sum(1) for block in blocks]
  steps_left = max_steps

  def search(index: int, groups: list[list[int]], sums: list[np.ndarray]
             ) -> Optional[list[list[int]]]:
    nonlocal steps_left
    steps_left -= 1
    if steps_left < 0:
      raise ReadoutError("an MLP's outputs split into variables in too many "
                         "ways to search")
    if index == len(blocks):
      ok = all(np.all(total[some_on_N] == 1)
               for group, total in zip(groups, sums) if len(group) > 1)
      return groups if ok else None
    pattern, first = patterns[index], dims[blocks[index][0]]
    if np.any(pattern > 1):
      return None  # Read together, yet on together: not one variable.
    for g, (group, total) in enumerate(zip(groups, sums)):
      if np.any(total + pattern > 1) or not readers_nested(
          readers[first], readers[dims[group[0]]]):
        continue
      found = search(index + 1, groups[:g] + [group + blocks[index]]
                     + groups[g + 1:], sums[:g] + [total + pattern]
                     + sums[g + 1:])
      if found is not None:
        return found
    return search(index + 1, groups + [list(blocks[index])],
                  sums + [pattern])

  found = search(0, [], [])
  if found is None:
    raise ReadoutError("an MLP's outputs do not split into one-hot variables")
  return [[dims[c] for c in group] for group in found]
