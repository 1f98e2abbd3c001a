"""The closed, named table of functions a program may use.

A name determines its function exactly, constants included: `LAM_SUB_1` is
`x - 1` and nothing else. That is what makes a predicted token sequence a
program rather than a template. The tables are the single source of names:
the encoding vocabulary is generated from them.
"""

import dataclasses
from typing import Any, Callable, Iterable, Sequence, TypeVar

from tracr.rasp import rasp


@dataclasses.dataclass(frozen=True)
class NamedFunction:
  """A function with a stable name and the Python source a user would write.

  Attributes:
    name: token naming the function, e.g. `LAM_ADD_1`.
    fn: the callable handed to `rasp.Map` / `rasp.SequenceMap`.
    source: the body as Python, in terms of `x` (and `y`), for printing.
    domain: what the inputs must be for the function to be meaningful:
      `"int"` (integers, booleans excluded) or `"bool"`.
  """

  name: str
  fn: Callable[..., Any]
  source: str
  domain: str


@dataclasses.dataclass(frozen=True)
class LinearFunction:
  """A numerical SequenceMap `fst_factor * x + snd_factor * y`.

  tracr compiles these (rasp.LinearSequenceMap) to a linear MLP, so they are
  the only two-argument functions allowed on numerical variables.
  """

  name: str
  fst_factor: float
  snd_factor: float

  @property
  def source(self) -> str:
    return f"{self.fst_factor:g} * x + {self.snd_factor:g} * y"


def _unary(name: str, source: str, domain: str = "int") -> NamedFunction:
  # eval of a fixed literal from this module: the source text and the function
  # can never disagree.
  return NamedFunction(name, eval(f"lambda x: {source}"), source, domain)  # pylint: disable=eval-used


def _binary(name: str, source: str, domain: str = "int") -> NamedFunction:
  return NamedFunction(name, eval(f"lambda x, y: {source}"), source, domain)  # pylint: disable=eval-used


# One-argument functions for Map. Comparisons return bool, as people write
# them (`x == 0`); booleans then feed LAM_NOT, LAM_AND, LAM_OR.
MAP_FUNCTIONS: tuple[NamedFunction, ...] = (
    _unary("LAM_ADD_1", "x + 1"),
    _unary("LAM_ADD_2", "x + 2"),
    _unary("LAM_ADD_3", "x + 3"),
    _unary("LAM_SUB_1", "x - 1"),
    _unary("LAM_SUB_2", "x - 2"),
    _unary("LAM_SUB_3", "x - 3"),
    _unary("LAM_MUL_2", "x * 2"),
    _unary("LAM_MUL_3", "x * 3"),
    _unary("LAM_DIV_2", "x // 2"),
    _unary("LAM_MOD_2", "x % 2"),
    _unary("LAM_MOD_3", "x % 3"),
    _unary("LAM_NEG", "-x"),
    _unary("LAM_SQUARE", "x * x"),
    _unary("LAM_ABS", "abs(x)"),
    _unary("LAM_EQ_0", "x == 0"),
    _unary("LAM_EQ_1", "x == 1"),
    _unary("LAM_EQ_2", "x == 2"),
    _unary("LAM_NE_0", "x != 0"),
    _unary("LAM_NE_1", "x != 1"),
    _unary("LAM_LT_1", "x < 1"),
    _unary("LAM_LT_2", "x < 2"),
    _unary("LAM_LT_3", "x < 3"),
    _unary("LAM_LT_5", "x < 5"),
    _unary("LAM_GT_0", "x > 0"),
    _unary("LAM_GT_1", "x > 1"),
    _unary("LAM_GT_2", "x > 2"),
    _unary("LAM_GT_4", "x > 4"),
    _unary("LAM_NOT", "not x", domain="bool"),
)

# Two-argument functions for categorical SequenceMap.
SEQUENCE_MAP_FUNCTIONS: tuple[NamedFunction, ...] = (
    _binary("LAM_ADD", "x + y"),
    _binary("LAM_SUB", "x - y"),
    _binary("LAM_MUL", "x * y"),
    _binary("LAM_MAX", "max(x, y)"),
    _binary("LAM_MIN", "min(x, y)"),
    _binary("LAM_EQ", "x == y"),
    _binary("LAM_NE", "x != y"),
    _binary("LAM_LT", "x < y"),
    _binary("LAM_GT", "x > y"),
    _binary("LAM_AND", "x and y", domain="bool"),
    _binary("LAM_OR", "x or y", domain="bool"),
)

# Numerical SequenceMaps (tracr's LinearSequenceMap).
LINEAR_FUNCTIONS: tuple[LinearFunction, ...] = (
    LinearFunction("LAM_LINEAR_ADD", 1.0, 1.0),
    LinearFunction("LAM_LINEAR_SUB", 1.0, -1.0),
)

# Select predicates, applied as predicate(key, query) like rasp.Comparison.
PREDICATES: dict[str, rasp.Comparison] = {
    "PRED_EQ": rasp.Comparison.EQ,
    "PRED_LT": rasp.Comparison.LT,
    "PRED_LEQ": rasp.Comparison.LEQ,
    "PRED_GT": rasp.Comparison.GT,
    "PRED_GEQ": rasp.Comparison.GEQ,
    "PRED_NEQ": rasp.Comparison.NEQ,
    "PRED_TRUE": rasp.Comparison.TRUE,
    "PRED_FALSE": rasp.Comparison.FALSE,
}

# f -> the table's g with g(y, x) == f(x, y), where there is one: a
# SequenceMap's two arguments compile symmetrically (an MLP neuron per value
# pair), so f(a, b) and g(b, a) have the same weights up to neuron order.
SWAPPED_ARGUMENTS: dict[str, str] = {
    **{name: name for name in ("LAM_ADD", "LAM_MUL", "LAM_MAX", "LAM_MIN",
                               "LAM_EQ", "LAM_NE", "LAM_AND", "LAM_OR")},
    "LAM_LT": "LAM_GT", "LAM_GT": "LAM_LT"}

MAP_BY_NAME: dict[str, NamedFunction] = {f.name: f for f in MAP_FUNCTIONS}
SEQUENCE_MAP_BY_NAME: dict[str, NamedFunction] = {
    f.name: f for f in SEQUENCE_MAP_FUNCTIONS}
LINEAR_BY_NAME: dict[str, LinearFunction] = {f.name: f for f in LINEAR_FUNCTIONS}
PREDICATE_NAMES: dict[rasp.Comparison, str] = {
    c: n for n, c in PREDICATES.items()}

# Every function token, in a fixed order (the encoding vocabulary uses it).
ALL_FUNCTION_NAMES: tuple[str, ...] = (
    tuple(MAP_BY_NAME) + tuple(SEQUENCE_MAP_BY_NAME) + tuple(LINEAR_BY_NAME)
    + tuple(PREDICATES))


def accepts(function: NamedFunction, values: frozenset) -> bool:
  """Whether `values` lie in the function's domain."""
  if function.domain == "bool":
    return all(isinstance(v, bool) for v in values)
  return all(isinstance(v, int) and not isinstance(v, bool) for v in values)


Candidate = TypeVar("Candidate")


def first_equal_on(candidates: Sequence[Candidate], chosen: Candidate,
                   points: Iterable[tuple],
                   apply: Callable[[Candidate, tuple], Any]) -> Candidate:
  """The first of `candidates` that gives `chosen`'s outputs on `points`.

  Outputs are compared with their types (`1` is not `True`). On the values
  a variable can take, `x > 0` and `x != 0` over {0, 1, 2} are one function:
  the compiled weights are the same, so a label naming either is a coin flip
  the meta-model cannot learn. The first equal candidate (table order) is
  the class's one name. `chosen` must be among `candidates`; a candidate
  that raises on a point (`x < y` on a number and a string) is not equal.
  """
  points = list(points)
  typed = lambda c: [(type(v), v) for v in (apply(c, p) for p in points)]
  reference = typed(chosen)

  def equal(candidate: Candidate) -> bool:
    try:
      return typed(candidate) == reference
    except (TypeError, ValueError, ArithmeticError):
      return False

  return next(c for c in candidates if equal(c))
