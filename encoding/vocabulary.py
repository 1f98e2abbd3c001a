"""The token vocabulary of program rows, generated from the rasp_gen tables.

A program row is five tokens `operator, arg1, arg2, arg3, return-var`. Every
token name comes from rasp_gen (operators, encodings, function names, input
names) or from a rule (`v1..vN`, the framing tokens), so adding a function to
`rasp_gen.functions` adds it here with no second list to keep in sync.

The encoding of a row is carried by its operator token: categorical operators
are spelled as in `Operator` (`MAP`), numerical ones get a suffix
(`MAP_NUMERICAL`). Only operators whose output may be numerical have a
numerical variant (see `program.validate`).
"""

import dataclasses
import functools

import numpy as np

from rasp_gen import functions
from rasp_gen.program import INPUTS, Encoding, Operator

PAD = "PAD"  # Fills rows after PROGRAM_END.
NA = "NA"  # An unused slot of a row.
PROGRAM_START = "PROGRAM_START"
PROGRAM_END = "PROGRAM_END"
NUM_COLUMNS = 5  # operator, arg1, arg2, arg3, return-var.
NUMERICAL_SUFFIX = "_NUMERICAL"

# Operators whose output can be numerical; Select outputs a selector and
# SelectorWidth is categorical only.
_NUMERICAL_OPERATORS = (Operator.MAP, Operator.SEQUENCE_MAP,
                        Operator.AGGREGATE)


def operator_token(operator: Operator, encoding: Encoding) -> str:
  if encoding == Encoding.NUMERICAL:
    return operator.value + NUMERICAL_SUFFIX
  return operator.value


def variable_token(position: int) -> str:
  """Canonical name of the variable defined by instruction `position` - 1."""
  return f"v{position}"


@dataclasses.dataclass(frozen=True)
class Vocabulary:
  """Token names, their ids, and which tokens each row column may hold.

  Attributes:
    tokens: token name of each id.
    ids: id of each token name.
    operators: operator token -> (Operator, Encoding).
    functions: function and predicate tokens.
    variables: `v1` .. `vN`.
    column_masks: [NUM_COLUMNS, size] bool; column c may hold token t iff
      column_masks[c, t]. A decoder can restrict its logits with it.
  """

  tokens: tuple[str, ...]
  ids: dict[str, int]
  operators: dict[str, tuple[Operator, Encoding]]
  functions: frozenset[str]
  variables: frozenset[str]
  column_masks: np.ndarray

  @property
  def size(self) -> int:
    return len(self.tokens)


@functools.lru_cache(maxsize=None)
def get_vocabulary(max_variables: int) -> Vocabulary:
  """The vocabulary for programs of at most `max_variables` instructions.

  Ids do not depend on `max_variables` except that variables come last, so
  `v1` .. `vN` keep their ids when N grows.
  """
  if max_variables < 1:
    raise ValueError(f"max_variables must be at least 1, got {max_variables}")
  operators = {operator_token(op, Encoding.CATEGORICAL): (
      op, Encoding.CATEGORICAL) for op in Operator}
  operators.update({operator_token(op, Encoding.NUMERICAL): (
      op, Encoding.NUMERICAL) for op in _NUMERICAL_OPERATORS})
  variables = tuple(variable_token(i) for i in range(1, max_variables + 1))
  groups = {
      "special": (PAD, NA, PROGRAM_START, PROGRAM_END),
      "operator": tuple(operators),
      "function": functions.ALL_FUNCTION_NAMES,
      "input": INPUTS,
      "variable": variables,
  }
  tokens = tuple(t for group in groups.values() for t in group)
  if len(set(tokens)) != len(tokens):
    raise ValueError(f"duplicate token names in {tokens}")
  ids = {t: i for i, t in enumerate(tokens)}

  # Which groups each column may hold (PAD everywhere, for padding rows).
  allowed = (
      groups["operator"] + (PROGRAM_START, PROGRAM_END),  # operator
      groups["function"] + variables + (NA,),  # function, or a selector
      INPUTS + variables + (NA,),  # first sequence argument / keys
      INPUTS + variables + (NA,),  # second sequence argument / queries
      variables + (NA,),  # return variable; NA on framing rows
  )
  column_masks = np.zeros((NUM_COLUMNS, len(tokens)), dtype=bool)
  for column, names in enumerate(allowed):
    column_masks[column, [ids[n] for n in names + (PAD,)]] = True
  return Vocabulary(tokens, ids, operators, frozenset(groups["function"]),
                    frozenset(variables), column_masks)
