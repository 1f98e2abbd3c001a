"""What the read-out passes share: the weights and the variables found so far.

The passes (`embeddings` → `variables` → `attention` → `mlps` → `values` →
`program`) each add to one `ReadState`: variables (residual directions and,
once known, their values) and instructions whose functions are still tables
over directions (`DirectionTable`) until `values` names the directions.
"""

import dataclasses
from typing import Any, Optional, Sequence

import numpy as np

from compiled import params as params_lib
from compiled import saved
from rasp_gen.program import Instruction
from readout.errors import ReadoutError

ZERO = 1e-6  # Weights and activations below this are absent.

Params = dict[str, dict[str, np.ndarray]]


@dataclasses.dataclass
class Variable:
  """A residual variable: its directions and, once known, their values.

  Attributes:
    name: `tokens`, `indices` or `x<n>` (renamed by `program`).
    dims: its residual directions (one if numerical).
    numerical: tracr's encoding.
    values: per direction, the value it stands for (categorical); None until
      named (`values`).
    value_set: a numerical variable's values as tracr's value-set inference
      has them (the points its readers' thresholds sit between).
    copies: an Aggregate's output holds its input's values: (input name,
      output direction -> input direction).
  """

  name: str
  dims: tuple[int, ...]
  numerical: bool
  values: Optional[list] = None
  value_set: Optional[set] = None
  copies: Optional[tuple[str, dict[int, int]]] = None


@dataclasses.dataclass(frozen=True)
class Head:
  """One attention head as two residual-by-residual matrices."""

  query_key_DxD: np.ndarray  # Already divided by sqrt(key size).
  value_output_DxD: np.ndarray


@dataclasses.dataclass(frozen=True)
class DirectionTable:
  """A function read as a table over directions (a categorical argument's
  key is its direction, a numerical one's its value), before the directions
  have values."""

  table: dict


def heads_of_layer(params: Params, layer: int, num_heads: int) -> list[Head]:
  """The layer's heads that write anything, in order."""
  weight = lambda name: params[params_lib.attn_key(layer, name)]["w"]
  key_size = weight("query").shape[1] // num_heads
  heads = []
  for h in range(num_heads):
    part = slice(h * key_size, (h + 1) * key_size)
    query_key = weight("query")[:, part] @ weight("key")[:, part].T
    value_output = weight("value")[:, part] @ weight("linear")[part]
    if np.abs(value_output).max(initial=0) > ZERO:
      heads.append(Head(query_key / np.sqrt(key_size), value_output))
  return heads


def run_mlp(params: Params, layer: int, residual_NxD: np.ndarray,
            neurons: np.ndarray) -> np.ndarray:
  """The layer's MLP restricted to `neurons`, on residual rows."""
  first = params[params_lib.mlp_key(layer, "linear_1")]
  second = params[params_lib.mlp_key(layer, "linear_2")]
  hidden = np.maximum(residual_NxD @ first["w"][:, neurons]
                      + first["b"][neurons], 0.0)
  return hidden @ second["w"][neurons] + second["b"]


def as_number(value: float) -> Any:
  """A read weight or activation as the int or float it stands for."""
  rounded = round(float(value), 6)
  return int(rounded) if rounded == int(rounded) else rounded


@dataclasses.dataclass
class ReadState:
  """One read in progress.

  Attributes:
    model: the model read (in tracr's basis).
    params: its params as float64, with a `one` direction (`embeddings`).
    layout: its shapes.
    one, bos: the directions of `one` and of the BOS token.
    layer_heads: per layer, its heads that write anything.
    value_readers: per direction, the modules reading it as a value.
    read_together: per direction, the class of directions that must be one
      variable (`variables.read_together`).
    written: directions something writes.
    live_neurons: per layer, the MLP neurons that can fire.
    variables: by name, in order of creation.
    owner: direction -> the variable holding it.
    instructions: read so far, in order.
    selectors: a Select's (keys, queries, relation) -> its name, so equal
      selectors are one.
    output_name: the variable the output decoding reads (`values`).
  """

  model: saved.SavedModel
  params: Params
  layout: params_lib.Layout
  one: int
  bos: int
  layer_heads: list[list[Head]] = dataclasses.field(default_factory=list)
  value_readers: dict[int, frozenset] = dataclasses.field(default_factory=dict)
  read_together: dict[int, int] = dataclasses.field(default_factory=dict)
  written: set[int] = dataclasses.field(default_factory=set)
  live_neurons: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)
  variables: dict[str, Variable] = dataclasses.field(default_factory=dict)
  owner: dict[int, str] = dataclasses.field(default_factory=dict)
  instructions: list[Instruction] = dataclasses.field(default_factory=list)
  selectors: dict[tuple, str] = dataclasses.field(default_factory=dict)
  output_name: Optional[str] = None

  def add(self, dims: Sequence[int], numerical: bool,
          values: Optional[list] = None, name: Optional[str] = None,
          value_set: Optional[set] = None) -> str:
    """Adds a variable holding `dims`; its name."""
    name = name or f"x{len(self.variables)}"
    self.variables[name] = Variable(name, tuple(dims), numerical, values,
                                    value_set=value_set)
    for dim in dims:
      if dim in self.owner:
        raise ReadoutError(f"direction {dim} is written twice")
      self.owner[dim] = name
    return name

  def owners(self, dims: Sequence[int]) -> list[str]:
    """The variables holding `dims`, in first-seen order; ReadoutError for
    a direction nothing wrote before."""
    names: list[str] = []
    for dim in dims:
      if dim not in self.written:
        # A value in tracr's value set that no input produces (e.g. a
        # SequenceMap's pair (x, y) of one variable with x != y): always 0.
        continue
      if dim not in self.owner:
        raise ReadoutError(f"direction {dim} is read before anything writes it")
      if self.owner[dim] not in names:
        names.append(self.owner[dim])
    return names

  def one_owner(self, dims: Sequence[int], what: str) -> str:
    """The one variable holding `dims`; ReadoutError naming `what` if not."""
    names = self.owners(dims)
    if len(names) != 1:
      raise ReadoutError(f"{what} reads {len(names)} variables, not one")
    return names[0]

  def writer_of(self, name: str) -> Optional[int]:
    """The index of the instruction writing `name` (None for tokens,
    indices and Aggregate-free inputs)."""
    found = [i for i, instruction in enumerate(self.instructions)
             if instruction.output == name]
    return found[0] if found else None

  def set_values(self, name: str, values: list) -> None:
    """Sets a categorical variable's values (per direction), and those of
    what it copies or what copies it; ReadoutError on a conflict."""
    variable = self.variables[name]
    if variable.values is not None:
      if variable.values != values:
        raise ReadoutError(f"conflicting values for a variable: "
                           f"{variable.values} and {values}")
      return
    variable.values = values
    by_dim = dict(zip(variable.dims, values))
    if variable.copies:
      source, copied = variable.copies
      source_dims = self.variables[source].dims
      if set(copied.values()) == set(source_dims):
        by_source = {s: by_dim[t] for t, s in copied.items()}
        self.set_values(source, [by_source[s] for s in source_dims])
    for other in list(self.variables.values()):
      if other.copies and other.copies[0] == name:
        self.set_values(other.name, [values[variable.dims.index(
            other.copies[1][t])] for t in other.dims])
