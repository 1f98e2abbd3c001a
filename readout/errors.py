"""The one error every read-out pass raises."""


class ReadoutError(ValueError):
  """The weights are not (or not only) tracr's recipes; the message says where."""
