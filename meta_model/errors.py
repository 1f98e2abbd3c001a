"""User errors: what the scripts report in one line instead of a traceback.

A `UserError` is a problem with what the user passed (a path, a file, a
model over the meta-model's limits, a config value). `exit_on_user_error`
wraps a script's `main`: such an error prints `error: MESSAGE` on stderr and
exits with status 1 (absl's SystemExit), while any other exception keeps its
traceback.
"""

import functools
import sys
from typing import Callable


class UserError(ValueError):
  """A problem with the user's input; the message names the culprit."""


def exit_on_user_error(main: Callable[..., None]) -> Callable[..., None]:
  @functools.wraps(main)
  def wrapped(*args, **kwargs):
    try:
      return main(*args, **kwargs)
    except UserError as error:
      print(f"error: {error}", file=sys.stderr, flush=True)
      raise SystemExit(1) from None
  return wrapped
