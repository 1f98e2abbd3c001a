"""Conversion between `Program` and tracr's RASP expressions."""

import math
from typing import Any, Callable, Collection, Optional, Sequence

from tracr.compiler import basis_inference, nodes, rasp_to_graph
from tracr.rasp import rasp
from tracr.utils import errors

from rasp_gen import functions
from rasp_gen.program import (INDICES, TOKENS, Encoding, Function,
                              Instruction, Linear, Operator, Program, Table,
                              validate)

_FUNCTION_NAMES = {id(f.fn): f.name for f in functions.MAP_FUNCTIONS
                   + functions.SEQUENCE_MAP_FUNCTIONS}
_LINEAR_NAMES = {(f.fst_factor, f.snd_factor): f.name
                 for f in functions.LINEAR_FUNCTIONS}


def _set_encoding(sop: rasp.SOp, encoding: Encoding) -> rasp.SOp:
  return rasp.numerical(sop) if encoding == Encoding.NUMERICAL else rasp.categorical(sop)


def _nearest(table: Table) -> Callable[[Any], Any]:
  """The function tracr's MLP computes for a Map table of a numerical input.

  The MLP splits the input line at the midpoints between the table's
  arguments that have a value, so an input between them reads the nearest
  one's value (the larger one's on a tie). Inputs off the table do occur:
  a numerical Aggregate averages to values (2/3) that tracr's value sets
  leave out.
  """
  defined = [args[0] for args, value in table.entries if value is not None]

  def read(x: Any) -> Any:
    try:
      return table(x)
    except KeyError:
      return table(min(defined, key=lambda k: (abs(k - x), -k)))

  return read


def to_rasp(program: Program) -> rasp.SOp:
  """Builds the tracr expression; every node is named by its variable.

  Names matter: tracr orders the residual stream by label, so the same
  program with the same names always compiles to the same weights.
  """
  validate(program)
  env: dict[str, rasp.RASPExpr] = {TOKENS: rasp.tokens, INDICES: rasp.indices}
  for instruction in program.instructions:
    args = [env[a] for a in instruction.args]
    function = instruction.function
    if instruction.operator == Operator.MAP:
      if not isinstance(function, Table):
        function = functions.MAP_BY_NAME[function].fn
      elif rasp.is_numerical(args[0]):
        function = _nearest(function)
      expr = rasp.Map(function, args[0], simplify=False)
    elif instruction.operator == Operator.SEQUENCE_MAP:
      if instruction.encoding == Encoding.NUMERICAL:
        linear = (function if isinstance(function, Linear)
                  else functions.LINEAR_BY_NAME[function])
        expr = rasp.LinearSequenceMap(args[0], args[1], linear.fst_factor,
                                      linear.snd_factor)
      else:
        if not isinstance(function, Table):
          function = functions.SEQUENCE_MAP_BY_NAME[function].fn
        expr = rasp.SequenceMap(function, *args)
    elif instruction.operator == Operator.SELECT:
      if not isinstance(function, Table):
        function = functions.PREDICATES[function]
      expr = rasp.Select(args[0], args[1], function)
    elif instruction.operator == Operator.AGGREGATE:
      default = 0 if instruction.encoding == Encoding.NUMERICAL else None
      expr = rasp.Aggregate(args[0], args[1], default=default)
    else:
      expr = rasp.SelectorWidth(args[0])
    if instruction.operator != Operator.SELECT:
      expr = _set_encoding(expr, instruction.encoding)
    env[instruction.output] = expr.named(instruction.output)
  return env[program.output]


def _describe(expr: rasp.RASPExpr) -> str:
  return f"{type(expr).__name__} {expr.name!r}"


_COMPILED = (rasp.Map, rasp.SequenceMap, rasp.Select, rasp.Aggregate,
             rasp.SelectorWidth)


def _post_order(sop: rasp.SOp) -> list[rasp.RASPExpr]:
  """The expressions below `sop` (inputs left out), arguments first, checked
  to be ones tracr compiles."""
  order: list[rasp.RASPExpr] = []
  seen: set[str] = set()
  stack: list[tuple[rasp.RASPExpr, bool]] = [(sop, False)]
  while stack:
    expr, expanded = stack.pop()
    if expr.label in seen or isinstance(expr, (rasp.TokensType,
                                               rasp.IndicesType)):
      continue
    if expanded:
      seen.add(expr.label)
      order.append(expr)
      continue
    if not isinstance(expr, _COMPILED):
      raise ValueError(f"{_describe(expr)}: not one of Map, SequenceMap, "
                       "Select, Aggregate, SelectorWidth over tokens/indices "
                       "(tracr compiles no other expression)")
    if isinstance(expr, rasp.Aggregate) and (
        expr.default is not None if rasp.is_categorical(expr)
        else expr.default != 0):
      raise ValueError(f"{_describe(expr)}: default {expr.default!r}; tracr "
                       "compiles only None (categorical) or 0 (numerical)")
    stack.append((expr, True))
    stack.extend((child, False) for child in reversed(expr.children))
  return order


def _value_sets(sop: rasp.SOp, order: Sequence[rasp.RASPExpr],
                vocab: Collection, max_seq_len: int) -> dict[str, set]:
  """Each SOp's value set by label, as tracr infers it to compile."""
  extracted = rasp_to_graph.extract_rasp_graph(sop)
  graph = extracted.graph
  infer = lambda label: basis_inference.infer_bases(
      graph, graph.nodes[label], set(vocab), max_seq_len)
  try:
    infer(extracted.sink[nodes.ID])
  except Exception:  # pylint: disable=broad-except
    # User functions raise anything; name the first node whose values fail.
    for expr in order:
      try:
        infer(expr.label)
      except Exception as error:  # pylint: disable=broad-except
        raise ValueError(f"{_describe(expr)}: tracr cannot infer its values "
                         f"({error!r})") from error
    raise
  return {label: node[nodes.VALUE_SET] for label, node in graph.nodes.items()
          if nodes.VALUE_SET in node}


def _same(first: Any, second: Any) -> bool:
  """Equal with types: `1` is not `True`, so a table keeps its outputs."""
  return type(first) is type(second) and first == second


def _name_of_table(table: Table, domains: Sequence[Collection],
                   candidates: Sequence[tuple[str, Callable[..., Any]]]
                   ) -> Optional[str]:
  """The first candidate that is the table on every point of the domains.

  Names read better than tables: `lambda x: x + 1` on {1, 2, 3} prints as
  LAM_ADD_1. A candidate that fails on a point, or a table that leaves a
  point out, is no match.
  """
  if len(table.entries) != math.prod(len(d) for d in domains):
    return None
  for name, fn in candidates:
    try:
      if all(_same(fn(*args), value) for args, value in table.entries):
        return name
    except (ArithmeticError, TypeError, ValueError):
      continue
  return None


def _named_candidates(table: Sequence[functions.NamedFunction],
                      domains: Sequence[Collection]
                      ) -> list[tuple[str, Callable[..., Any]]]:
  return [(f.name, f.fn) for f in table
          if all(functions.accepts(f, frozenset(d)) for d in domains)]


def readable(operator: Operator, table: Table) -> Function:
  """The named function or predicate equal to a full categorical table on
  its whole domain (e.g. `LAM_ADD_1`, `PRED_LT`), else the table itself."""
  domains = [sorted({args[i] for args, _ in table.entries}, key=repr)
             for i in range(table.arity)]
  if operator == Operator.SELECT:
    candidates = [(name, lambda k, q, c=comparison: bool(c(k, q)))
                  for name, comparison in functions.PREDICATES.items()]
  else:
    candidates = _named_candidates(
        functions.MAP_FUNCTIONS if operator == Operator.MAP
        else functions.SEQUENCE_MAP_FUNCTIONS, domains)
  return _name_of_table(table, domains, candidates) or table


def _read_table(expr: rasp.RASPExpr, fn: Callable[..., Any],
                domains: Sequence[Collection]) -> Table:
  try:
    return Table.from_function(fn, domains)
  except Exception as error:  # pylint: disable=broad-except
    # A user function raises anything; tracr would fail on it too.
    raise ValueError(f"{_describe(expr)}: its function gives no table on its "
                     f"arguments' values ({error!r})") from error


def _needs_values(expr: rasp.RASPExpr, table: str) -> ValueError:
  return ValueError(f"{_describe(expr)}: its function is not in the {table} "
                    "table (build it from rasp_gen.functions, with "
                    "simplify=False, or pass vocab and max_seq_len to read any "
                    "function into a table)")


def _function(expr: rasp.RASPExpr, values: Optional[dict[str, set]]
              ) -> Optional[Function]:
  """The function of one expression: its name where it has one, else its
  table (needs `values`) or linear factors."""
  if isinstance(expr, rasp.Map):
    name = _FUNCTION_NAMES.get(id(expr.f))
    numerical_input = rasp.is_numerical(expr.inner)
    if name in functions.MAP_BY_NAME and not (
        values is not None and numerical_input):
      return name
    if values is None:
      raise _needs_values(expr, "Map")
    domains = [values[expr.inner.label]]
    if numerical_input:
      # tracr's numerical-input MLP reads an ArithmeticError as None and
      # skips that argument; the table keeps it so its MLP skips it too.
      return _read_table(expr, errors.ignoring_arithmetic_errors(expr.f),
                         domains)
    table = _read_table(expr, expr.f, domains)
    return _name_of_table(table, domains, _named_candidates(
        functions.MAP_FUNCTIONS, domains)) or table
  if isinstance(expr, rasp.LinearSequenceMap):
    return (_LINEAR_NAMES.get((expr.fst_fac, expr.snd_fac))
            or Linear(expr.fst_fac, expr.snd_fac))
  if isinstance(expr, rasp.SequenceMap):
    name = _FUNCTION_NAMES.get(id(expr.f))
    if name in functions.SEQUENCE_MAP_BY_NAME:
      return name
    if values is None:
      raise _needs_values(expr, "SequenceMap")
    domains = [values[expr.fst.label], values[expr.snd.label]]
    table = _read_table(expr, expr.f, domains)
    return _name_of_table(table, domains, _named_candidates(
        functions.SEQUENCE_MAP_FUNCTIONS, domains)) or table
  if isinstance(expr, rasp.Select):
    if isinstance(expr.predicate, rasp.Comparison):
      return functions.PREDICATE_NAMES[expr.predicate]
    if values is None:
      raise ValueError(f"{_describe(expr)}: predicate {expr.predicate!r} is "
                       "not a rasp.Comparison (pass vocab and max_seq_len to "
                       "read it into a table)")
    domains = [values[expr.keys.label], values[expr.queries.label]]
    # bool() as tracr's evaluator reads a predicate's result.
    table = _read_table(expr, lambda k, q: bool(expr.predicate(k, q)), domains)
    return _name_of_table(table, domains, [
        (name, lambda k, q, c=comparison: bool(c(k, q)))
        for name, comparison in functions.PREDICATES.items()]) or table
  return None


def _operator_and_args(expr: rasp.RASPExpr
                       ) -> tuple[Operator, tuple[rasp.RASPExpr, ...]]:
  if isinstance(expr, rasp.Map):
    return Operator.MAP, (expr.inner,)
  if isinstance(expr, rasp.SequenceMap):
    return Operator.SEQUENCE_MAP, (expr.fst, expr.snd)
  if isinstance(expr, rasp.Select):
    return Operator.SELECT, (expr.keys, expr.queries)
  if isinstance(expr, rasp.Aggregate):
    return Operator.AGGREGATE, (expr.selector, expr.sop)
  return Operator.SELECTOR_WIDTH, (expr.selector,)


def _variable(expr: rasp.RASPExpr) -> str:
  if isinstance(expr, rasp.TokensType):
    return TOKENS
  if isinstance(expr, rasp.IndicesType):
    return INDICES
  return expr.label


def from_rasp(sop: rasp.SOp, vocab: Optional[Collection] = None,
              max_seq_len: Optional[int] = None) -> Program:
  """Reads a tracr expression into a Program.

  Without `vocab` and `max_seq_len`, functions must be the named ones of
  `rasp_gen.functions` (or linear factors). With them, any program stock
  tracr compiles converts: each other function becomes a Table over the
  values tracr infers its arguments take, or the first named function equal
  to it there. Variables keep the expression labels; call `canonicalize` for
  `v1, v2, ...`. Raises ValueError naming the node for anything tracr does not
  compile (rasp.Full, rasp.length, composite selectors, other defaults).
  """
  if not isinstance(sop, rasp.SOp):
    raise ValueError(f"{_describe(sop)}: the program output must be an SOp")
  if (vocab is None) != (max_seq_len is None):
    raise ValueError("pass both vocab and max_seq_len, or neither")
  order = _post_order(sop)
  values = (None if vocab is None
            else _value_sets(sop, order, vocab, max_seq_len))
  instructions = []
  for expr in order:
    operator, args = _operator_and_args(expr)
    encoding = (Encoding.NUMERICAL if isinstance(expr, rasp.SOp)
                and rasp.is_numerical(expr) else Encoding.CATEGORICAL)
    instructions.append(Instruction(
        operator, _function(expr, values), tuple(_variable(a) for a in args),
        expr.label, encoding))
  program = Program(tuple(instructions))
  validate(program)
  return program


def _literal(value: Any) -> str:
  """Python source for a value; repr, but inf and nan must be built."""
  if isinstance(value, float) and not math.isfinite(value):
    return f"float({str(value)!r})"
  if isinstance(value, tuple):
    items = [_literal(v) for v in value]
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
  return repr(value)


def _dict_source(table: Table) -> str:
  key = lambda args: _literal(args[0]) if len(args) == 1 else _literal(args)
  return "{" + ", ".join(f"{key(args)}: {_literal(value)}"
                         for args, value in table.entries) + "}"


# Emitted above programs that read a numerical input's table (see _nearest).
_NEAREST_SOURCE = '''\
def nearest(table, x):
  """tracr's MLP for a numerical input reads the nearest argument's value."""
  if x in table:
    return table[x]
  defined = [k for k, v in table.items() if v is not None]
  return table[min(defined, key=lambda k: (abs(k - x), -k))]
'''


def _python_expression(instruction: Instruction, numerical_input: bool) -> str:
  ref = lambda name: f"rasp.{name}" if name in (TOKENS, INDICES) else name
  args = [ref(a) for a in instruction.args]
  function = instruction.function
  if instruction.operator == Operator.MAP:
    if not isinstance(function, Table):
      body = functions.MAP_BY_NAME[function].source
    elif numerical_input:
      body = f"nearest({_dict_source(function)}, x)"
    else:
      body = f"{_dict_source(function)}[x]"
    return f"rasp.Map(lambda x: {body}, {args[0]}, simplify=False)"
  if instruction.operator == Operator.SEQUENCE_MAP:
    if isinstance(function, Linear):
      return (f"rasp.LinearSequenceMap({args[0]}, {args[1]}, "
              f"{function.fst_factor!r}, {function.snd_factor!r})")
    if instruction.encoding == Encoding.NUMERICAL:
      linear = functions.LINEAR_BY_NAME[function]
      return (f"rasp.LinearSequenceMap({args[0]}, {args[1]}, "
              f"{linear.fst_factor:g}, {linear.snd_factor:g})")
    body = (f"{_dict_source(function)}[(x, y)]" if isinstance(function, Table)
            else functions.SEQUENCE_MAP_BY_NAME[function].source)
    return f"rasp.SequenceMap(lambda x, y: {body}, {args[0]}, {args[1]})"
  if instruction.operator == Operator.SELECT:
    if isinstance(function, Table):
      pairs = [_literal(args) for args, value in function.entries if value]
      relation = "{" + ", ".join(pairs) + "}" if pairs else "set()"
      return (f"rasp.Select({args[0]}, {args[1]}, "
              f"lambda key, query: (key, query) in {relation})")
    comparison = functions.PREDICATES[function].name
    return f"rasp.Select({args[0]}, {args[1]}, rasp.Comparison.{comparison})"
  if instruction.operator == Operator.AGGREGATE:
    default = 0 if instruction.encoding == Encoding.NUMERICAL else None
    return f"rasp.Aggregate({args[0]}, {args[1]}, default={default})"
  return f"rasp.SelectorWidth({args[0]})"


def to_python(program: Program) -> str:
  """Runnable Python that builds the program with `tracr.rasp`.

  The last line binds `program`; executing the text gives an SOp that
  computes what `to_rasp`'s does (names included), tables written out as
  dict and set literals.
  """
  validate(program)
  encodings = {TOKENS: Encoding.CATEGORICAL, INDICES: Encoding.CATEGORICAL}
  lines = []
  reads_nearest = False
  for instruction in program.instructions:
    numerical_input = (instruction.operator == Operator.MAP and
                       encodings[instruction.args[0]] == Encoding.NUMERICAL)
    reads_nearest |= numerical_input and isinstance(instruction.function, Table)
    expression = _python_expression(instruction, numerical_input)
    if instruction.operator != Operator.SELECT:
      wrap = ("numerical" if instruction.encoding == Encoding.NUMERICAL
              else "categorical")
      expression = f"rasp.{wrap}({expression})"
      encodings[instruction.output] = instruction.encoding
    lines.append(f'{instruction.output} = {expression}.named('
                 f'"{instruction.output}")')
  header = ["from tracr.rasp import rasp", ""]
  if reads_nearest:
    header += [_NEAREST_SOURCE]
  return "\n".join(header + lines + [f"program = {program.output}"]) + "\n"
