"""The one error a well-formed input may raise: it is too big for the arrays.

Encoders raise `LimitExceeded` (a ValueError) when a valid program or model
does not fit the configured sizes. The input pipeline drops exactly these and
counts them; any other error means malformed data and stops the run.
"""


class LimitExceeded(ValueError):
  """A valid input over a configured size limit; the message names it."""
