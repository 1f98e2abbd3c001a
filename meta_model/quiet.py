"""tracr's advice on hand-written programs, dropped where we build candidates.

A decoded candidate may apply a SequenceMap to one SOp twice, f(x, x): tracr
logs "Creating a SequenceMap with both inputs being the same SOp is
discouraged" every time such a program is built, 10-32 lines per evaluation
between eval.py's results. The candidates are the meta-model's proposals, built
on purpose to be checked, so the advice is dropped there and only there: every
other log line, tracr's included, still shows.
"""

import contextlib
import logging
from typing import Iterator

from absl import logging as absl_logging

_SAME_INPUTS = "Creating a SequenceMap with both inputs being the same SOp"


class _DropSameInputs(logging.Filter):

  def filter(self, record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(_SAME_INPUTS)


@contextlib.contextmanager
def candidate_programs() -> Iterator[None]:
  """Within it, tracr's same-input SequenceMap warning is not logged."""
  logger = absl_logging.get_absl_logger()  # tracr logs through absl.
  drop = _DropSameInputs()
  logger.addFilter(drop)
  try:
    yield
  finally:
    logger.removeFilter(drop)
