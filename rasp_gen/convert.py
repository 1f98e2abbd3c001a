"""Conversion between `Program` and tracr's RASP expressions."""

from tracr.rasp import rasp

from rasp_gen import functions
from rasp_gen.program import (INDICES, TOKENS, Encoding, Instruction,
                              Operator, Program, validate)

_FUNCTION_NAMES = {id(f.fn): f.name for f in functions.MAP_FUNCTIONS
                   + functions.SEQUENCE_MAP_FUNCTIONS}
_LINEAR_NAMES = {(f.fst_factor, f.snd_factor): f.name
                 for f in functions.LINEAR_FUNCTIONS}


def _set_encoding(sop: rasp.SOp, encoding: Encoding) -> rasp.SOp:
  return rasp.numerical(sop) if encoding == Encoding.NUMERICAL else rasp.categorical(sop)


def to_rasp(program: Program) -> rasp.SOp:
  """Builds the tracr expression; every node is named by its variable.

  Names matter: tracr orders the residual stream by label, so the same
  program with the same names always compiles to the same weights.
  """
  validate(program)
  env: dict[str, rasp.RASPExpr] = {TOKENS: rasp.tokens, INDICES: rasp.indices}
  for instruction in program.instructions:
    args = [env[a] for a in instruction.args]
    name = instruction.function
    if instruction.operator == Operator.MAP:
      expr = rasp.Map(functions.MAP_BY_NAME[name].fn, args[0], simplify=False)
    elif instruction.operator == Operator.SEQUENCE_MAP:
      if instruction.encoding == Encoding.NUMERICAL:
        linear = functions.LINEAR_BY_NAME[name]
        expr = rasp.LinearSequenceMap(args[0], args[1], linear.fst_factor,
                                      linear.snd_factor)
      else:
        expr = rasp.SequenceMap(functions.SEQUENCE_MAP_BY_NAME[name].fn, *args)
    elif instruction.operator == Operator.SELECT:
      expr = rasp.Select(args[0], args[1], functions.PREDICATES[name])
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


def from_rasp(sop: rasp.SOp) -> Program:
  """Reads a tracr expression built from the named functions into a Program.

  Variables keep the expression labels; call `canonicalize` for `v1, v2, ...`.
  Raises ValueError naming the node for anything outside the tables (a
  lambda of your own, a Map fused by `simplify=True`, a composite selector).
  """
  if not isinstance(sop, rasp.SOp):
    raise ValueError(f"{_describe(sop)}: the program output must be an SOp")
  instructions: list[Instruction] = []
  names: dict[int, str] = {}

  def name_of(expr: rasp.RASPExpr) -> str:
    if isinstance(expr, rasp.TokensType):
      return TOKENS
    if isinstance(expr, rasp.IndicesType):
      return INDICES
    if expr.unique_id not in names:
      visit(expr)
    return names[expr.unique_id]

  def visit(expr: rasp.RASPExpr) -> None:
    encoding = (Encoding.NUMERICAL if isinstance(expr, rasp.SOp)
                and rasp.is_numerical(expr) else Encoding.CATEGORICAL)
    if isinstance(expr, rasp.Map):
      function = _FUNCTION_NAMES.get(id(expr.f))
      if function is None or function not in functions.MAP_BY_NAME:
        raise ValueError(f"{_describe(expr)}: its function is not in the Map "
                         "table (build it from rasp_gen.functions, with "
                         "simplify=False)")
      operator, args = Operator.MAP, (name_of(expr.inner),)
    elif isinstance(expr, rasp.LinearSequenceMap):
      function = _LINEAR_NAMES.get((expr.fst_fac, expr.snd_fac))
      if function is None:
        raise ValueError(f"{_describe(expr)}: factors ({expr.fst_fac}, "
                         f"{expr.snd_fac}) are not in the linear table")
      operator, args = Operator.SEQUENCE_MAP, (name_of(expr.fst),
                                              name_of(expr.snd))
    elif isinstance(expr, rasp.SequenceMap):
      function = _FUNCTION_NAMES.get(id(expr.f))
      if function is None or function not in functions.SEQUENCE_MAP_BY_NAME:
        raise ValueError(f"{_describe(expr)}: its function is not in the "
                         "SequenceMap table")
      operator, args = Operator.SEQUENCE_MAP, (name_of(expr.fst),
                                              name_of(expr.snd))
    elif isinstance(expr, rasp.Select):
      function = functions.PREDICATE_NAMES.get(expr.predicate)
      if function is None:
        raise ValueError(f"{_describe(expr)}: predicate {expr.predicate!r} is "
                         "not a rasp.Comparison")
      operator, args = Operator.SELECT, (name_of(expr.keys),
                                         name_of(expr.queries))
    elif isinstance(expr, rasp.Aggregate):
      function = None
      operator, args = Operator.AGGREGATE, (name_of(expr.selector),
                                            name_of(expr.sop))
    elif isinstance(expr, rasp.SelectorWidth):
      function = None
      operator, args = Operator.SELECTOR_WIDTH, (name_of(expr.selector),)
    else:
      raise ValueError(f"{_describe(expr)}: not one of Map, SequenceMap, "
                       "Select, Aggregate, SelectorWidth over tokens/indices")
    names[expr.unique_id] = expr.label
    instructions.append(Instruction(operator, function, args, expr.label,
                                    encoding))

  name_of(sop)
  program = Program(tuple(instructions))
  validate(program)
  return program


def _python_expression(instruction: Instruction) -> str:
  ref = lambda name: f"rasp.{name}" if name in (TOKENS, INDICES) else name
  args = [ref(a) for a in instruction.args]
  name = instruction.function
  if instruction.operator == Operator.MAP:
    source = functions.MAP_BY_NAME[name].source
    return f"rasp.Map(lambda x: {source}, {args[0]}, simplify=False)"
  if instruction.operator == Operator.SEQUENCE_MAP:
    if instruction.encoding == Encoding.NUMERICAL:
      linear = functions.LINEAR_BY_NAME[name]
      return (f"rasp.LinearSequenceMap({args[0]}, {args[1]}, "
              f"{linear.fst_factor:g}, {linear.snd_factor:g})")
    source = functions.SEQUENCE_MAP_BY_NAME[name].source
    return f"rasp.SequenceMap(lambda x, y: {source}, {args[0]}, {args[1]})"
  if instruction.operator == Operator.SELECT:
    comparison = functions.PREDICATES[name].name
    return f"rasp.Select({args[0]}, {args[1]}, rasp.Comparison.{comparison})"
  if instruction.operator == Operator.AGGREGATE:
    default = 0 if instruction.encoding == Encoding.NUMERICAL else None
    return f"rasp.Aggregate({args[0]}, {args[1]}, default={default})"
  return f"rasp.SelectorWidth({args[0]})"


def to_python(program: Program) -> str:
  """Runnable Python that builds the program with `tracr.rasp`.

  The last line binds `program`; executing the text gives the same SOp
  (names included) as `to_rasp`.
  """
  validate(program)
  lines = ["from tracr.rasp import rasp", ""]
  for instruction in program.instructions:
    expression = _python_expression(instruction)
    if instruction.operator != Operator.SELECT:
      wrap = ("numerical" if instruction.encoding == Encoding.NUMERICAL
              else "categorical")
      expression = f"rasp.{wrap}({expression})"
    lines.append(f'{instruction.output} = {expression}.named('
                 f'"{instruction.output}")')
  lines.append(f"program = {program.output}")
  return "\n".join(lines) + "\n"
