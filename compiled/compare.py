"""The one comparison of two outputs, and of a program against expected outputs.

Typed: a categorical boolean equals only a boolean (`True` is not `1`, so a
program returning `[0, 1]` does not match weights that decode to
`[False, True]`), a string only a string, a number any equal number (tracr's
RASP evaluator turns a categorical Aggregate over equal ints into their
float mean, so `2.0` is `2`); numerical values are equal within NUMERICAL_TOLERANCE
(float32 weights, softmax attention that leaves ~1e-20 on BOS). None equals
only None. Verification (weights against a program), the sampler's
faithfulness check and the functional judge (program against program) all
compare through `same_output`, and count the same errors as a failing run.
"""

import numbers
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from tracr.rasp import rasp

NUMERICAL_TOLERANCE = 1e-4
# What tracr's RASP evaluator raises for a program that fails on an input.
RUN_ERRORS = (ValueError, TypeError, ArithmeticError, KeyError, IndexError)


def _plain(value: Any) -> Any:
  return value.item() if isinstance(value, np.generic) else value


def same_value(expected: Any, got: Any, numerical: bool) -> bool:
  """Does `got` equal `expected` (module doc)?"""
  expected, got = _plain(expected), _plain(got)
  if expected is None or got is None:
    return expected is None and got is None and not numerical
  if numerical:
    return (isinstance(got, numbers.Real) and isinstance(expected, numbers.Real)
            and abs(float(got) - float(expected)) <= NUMERICAL_TOLERANCE)
  if isinstance(expected, bool) or isinstance(got, bool):
    return type(got) is type(expected) and got == expected
  if isinstance(expected, numbers.Real) and isinstance(got, numbers.Real):
    return got == expected  # RASP averages equal ints: 2.0 is still 2.
  return type(got) is type(expected) and got == expected


def same_output(expected: Sequence, got: Sequence, numerical: bool) -> bool:
  """Do two output sequences agree position by position (module doc)?"""
  return len(expected) == len(got) and all(
      same_value(e, g, numerical) for e, g in zip(expected, got))


def compare(sop: rasp.SOp, inputs: Sequence[Sequence],
            expected_outputs: Sequence[Sequence], numerical: bool,
            stop_early: bool = True,
            known: Optional[Mapping[tuple, Sequence]] = None
            ) -> tuple[int, int, Optional[tuple[list, list, Any]]]:
  """`rasp.evaluate(sop, xs)` against the expected output on each input.

  Returns (inputs checked, inputs agreeing, first difference), the last as
  (input, expected output, the program's output) or None. A program that
  raises on an input disagrees there; its output is then the exception's
  text. With `stop_early` the check ends at the first difference. `known`
  maps `tuple(xs)` to `sop`'s output where the caller has evaluated it.
  """
  checked = agreeing = 0
  first = None
  known = known or {}
  for xs, expected in zip(inputs, expected_outputs):
    checked += 1
    try:
      got = known.get(tuple(xs))
      if got is None:
        got = rasp.evaluate(sop, list(xs))
    except RUN_ERRORS as error:
      got, same = f"{type(error).__name__}: {error}", False
    else:
      same = same_output(expected, got, numerical)
    if same:
      agreeing += 1
      continue
    if first is None:
      first = (list(xs), list(expected), got)
    if stop_early:
      break
  return checked, agreeing, first
