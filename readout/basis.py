"""How the read-out sees the weights: in tracr's residual basis.

Placeholder: the identity (tracr's own basis). Replaced by the recovery of a
tracr-like basis from weights in any residual basis.
"""

from compiled import saved


def to_tracr_basis(model: saved.SavedModel) -> saved.SavedModel:
  """`model` with its residual stream in tracr's basis (one-hot variables)."""
  return model
