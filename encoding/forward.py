"""The numpy forward pass of a tracr params dict, checked, for one sequence.

The computation is `rasp_gen.forward.forward` (one implementation, batched);
this wrapper first validates the params dict and the head count, so that a
malformed dict fails with a message naming the bad key. Tests use it to
confirm that an augmentation or re-encoding of the weights leaves the
function unchanged.
"""

import numpy as np

from encoding import params as params_lib
from encoding.params import Params
from rasp_gen import forward as rasp_forward


def forward(params: Params, token_ids_T: np.ndarray, num_heads: int,
            causal: bool = False) -> np.ndarray:
  """The final residual stream [T, d_model] for one input sequence.

  Args:
    params: a tracr params dict.
    token_ids_T: rows of token_embed, BOS included (tracr's input encoder
      maps a sequence [bos, x1, ...] to these ids).
    num_heads: heads per attention layer; tracr params do not store it.
    causal: mask attention to earlier positions, as a causal tracr model.
  """
  layout = params_lib.check_params(params)
  params_lib.check_num_heads(layout, num_heads)
  return rasp_forward.forward(params, np.asarray(token_ids_T)[None],
                              num_heads, causal)[0]
