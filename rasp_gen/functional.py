"""Do two programs compute the same function? Checked with tracr's evaluator.

Weights cannot tell every program apart (see `compiled.verify`) and two
different programs can compute the same thing (`x - 1 == 0` is `x == 1`), so
a decompiled program is also judged by what it computes: its outputs next to
the reference's on the check inputs (`compiled.inputs`), compared as
verification compares them (`compiled.compare`: typed, numerical within a
tolerance).
"""

from typing import Iterable, Sequence, Union

from tracr.rasp import rasp

from compiled import compare
from rasp_gen import convert
from rasp_gen.program import Program

ProgramLike = Union[Program, rasp.SOp]


def _as_rasp(program: ProgramLike) -> rasp.SOp:
  return convert.to_rasp(program) if isinstance(program, Program) else program


def run_program(program: ProgramLike, xs: Sequence) -> list:
  """The program's output on `xs`, by tracr's RASP evaluator."""
  return list(rasp.evaluate(_as_rasp(program), xs))


def same_function(candidate: ProgramLike, reference: ProgramLike,
                  inputs: Iterable[Sequence]) -> bool:
  """True iff both programs give equal outputs on every input.

  Outputs are compared by `compare.same_output` (typed: `True` is not `1`;
  numbers within `compare.NUMERICAL_TOLERANCE` when the reference is
  numerical; None only equals None). A candidate that fails while running
  (e.g. a None from an empty Aggregate reaching a Select) computes nothing,
  so it is False. Inputs on which the reference itself fails are skipped:
  RASP defines no output there (about 2 % of sampled programs fail on some
  short inputs that their random checks missed). When the reference fails
  on every input nothing was compared, and that is False too, not a vacuous
  True. An invalid Program raises `validate`'s ValueError.
  """
  candidate_sop = _as_rasp(candidate)
  reference_sop = _as_rasp(reference)
  numerical = rasp.is_numerical(reference_sop)
  compared = 0
  for xs in inputs:
    try:
      expected = rasp.evaluate(reference_sop, xs)
    except compare.RUN_ERRORS:
      continue
    try:
      got = rasp.evaluate(candidate_sop, xs)
    except compare.RUN_ERRORS:
      return False
    if not compare.same_output(expected, got, numerical):
      return False
    compared += 1
  return compared > 0
