"""The forward pass of a checked params dict on one sequence, for tests.

Tests that re-encode weights (augmentation, permutation) compare residual
streams before and after; a malformed dict should fail there naming its key.
"""

import numpy as np

from compiled import forward as forward_lib
from compiled import params as params_lib


def forward(params: params_lib.Params, token_ids_T: np.ndarray,
            num_heads: int, causal: bool = False) -> np.ndarray:
  """The final residual stream [T, d_model] of one sequence (BOS included)."""
  layout = params_lib.check_params(params)
  params_lib.check_num_heads(layout, num_heads)
  return forward_lib.forward(params, np.asarray(token_ids_T)[None],
                             num_heads, causal)[0]
