"""Does a candidate program reproduce given tracr weights?

Two levels, strict to lenient:

* `recompiles_exactly`: compiling the candidate gives the same params, bit
  for bit. tracr orders the residual stream by variable name (`to_rasp` names
  every node by its variable), so this needs the names too: a canonical
  candidate reproduces the weights of its canonical program.
* `residual_agreement`: on how many inputs the two models compute the same
  residual stream up to a relabeling of residual directions. tracr never
  overwrites a variable's dimensions, so the final residual holds every
  variable's value; equal multisets of per-position columns mean the same
  variables, whatever their names and hence their order.

Neither level sees the *values* a categorical variable's directions stand
for, only which positions light them up: `tokens + 1` and `tokens + 2`
compile to the same weights (the labels are not in the params). Judge what a
program computes with `rasp_gen.functional`. Conversely, programs that
compute the same function through different variables (`x - 1 == 0` vs
`x == 1`) have different residual streams, so agreement can be < 1 for them.
"""

from typing import Any, Iterable, Optional, Sequence

import numpy as np
from tracr.craft import bases
from tracr.rasp import rasp

from encoding import forward
from encoding import params as params_lib
from encoding.params import Params
from rasp_gen import compiler, convert
from rasp_gen.program import Program

# Residual values are compared after rounding to this many decimals: the two
# models add the same terms in a different order.
DECIMALS = 4


def input_tokens(vocab: Iterable, compiler_bos: str,
                 compiler_pad: str) -> list[Any]:
  """Token values in token-embedding row order, as tracr builds it.

  tracr sorts the token space's basis (vocab, BOS and PAD) by value; this is
  `compiler.CompiledModel.input_tokens` for weights compiled with `vocab`.
  """
  space = bases.VectorSpaceWithBasis.from_values(
      rasp.tokens.label, set(vocab) | {compiler_bos, compiler_pad})
  return [direction.value for direction in space.basis]


def _compile(program: Program, vocab: Iterable, max_seq_len: int,
             compiler_bos: str, compiler_pad: str,
             causal: bool) -> Optional[compiler.CompiledModel]:
  """The candidate's model, or None when tracr cannot compile it."""
  sop = convert.to_rasp(program)
  try:
    return compiler.compile_rasp_to_model_numpy(
        sop, set(vocab), max_seq_len, causal, compiler_bos, compiler_pad)
  except (ValueError, NotImplementedError):
    return None


def _same_params(got: Params, expected: Params) -> bool:
  if set(got) != set(expected):
    return False
  for module, module_params in expected.items():
    if set(got[module]) != set(module_params):
      return False
    for name, array in module_params.items():
      got_array, array = np.asarray(got[module][name]), np.asarray(array)
      if got_array.shape != array.shape or not np.array_equal(got_array,
                                                              array):
        return False
  return True


def recompiles_exactly(program: Program, params: Params, vocab: Iterable,
                       max_seq_len: int, compiler_bos: str, compiler_pad: str,
                       causal: bool = False) -> bool:
  """True iff compiling `program` gives `params`: same keys, shapes, values.

  False when the candidate does not compile; an invalid program raises
  `validate`'s ValueError. `causal` is passed to the compiler for symmetry
  but does not change tracr's weights.
  """
  compiled = _compile(program, vocab, max_seq_len, compiler_bos, compiler_pad,
                      causal)
  return compiled is not None and _same_params(compiled.params, params)


def _token_ids(tokens: list[Any], xs: Sequence, compiler_bos: str
               ) -> np.ndarray:
  """[BOS, *xs] as token-embedding rows, as tracr's input encoder does."""
  index = {token: i for i, token in enumerate(tokens)}
  unknown = [x for x in xs if x not in index or x == compiler_bos]
  if unknown:
    raise ValueError(f"input {list(xs)} has tokens {unknown} outside the "
                     f"vocab {tokens}")
  return np.array([index[compiler_bos]] + [index[x] for x in xs])


def _column_multiset(residual_TxD: np.ndarray) -> np.ndarray:
  """The residual's columns, rounded and sorted: invariant to their order."""
  rounded_TxD = np.round(residual_TxD, DECIMALS) + 0.0  # -0.0 becomes 0.0.
  order_D = np.lexsort(rounded_TxD[::-1])
  return rounded_TxD[:, order_D]


def _given_num_heads(layout: params_lib.Layout,
                     compiled_layout: params_lib.Layout,
                     compiled: compiler.CompiledModel,
                     num_heads: Optional[int]) -> int:
  """The given weights' head count; see `residual_agreement`."""
  if num_heads is not None:
    return num_heads
  if layout.attn_width == compiled_layout.attn_width:
    return compiled.num_heads
  return 1


def residual_agreement(program: Program, params: Params, vocab: Iterable,
                       max_seq_len: int, inputs: Sequence[Sequence],
                       compiler_bos: str, compiler_pad: str,
                       num_heads: Optional[int] = None,
                       causal: bool = False) -> float:
  """Share of `inputs` on which the candidate computes the given residual.

  Both models run `[BOS, *xs]` (token values, mapped to ids by
  `input_tokens`); an input agrees when the final residual streams are equal
  as multisets of per-position columns, rounded to DECIMALS. 0.0 when the
  candidate does not compile or its residual width differs.

  The given weights' head count is not in the params: `num_heads` if given,
  else the candidate's when every layer's attention width matches it, else 1
  (a wrong guess makes the residuals differ, lowering the agreement).

  Raises ValueError for malformed `params`, empty `inputs`, inputs with
  tokens outside `vocab` or longer than `max_seq_len`, and a vocab that does
  not match the token embedding.
  """
  if not inputs:
    raise ValueError("residual_agreement needs at least one input")
  layout = params_lib.check_params(params)
  tokens = input_tokens(vocab, compiler_bos, compiler_pad)
  token_rows = params[params_lib.TOKEN_EMBED]["embeddings"].shape[0]
  if token_rows != len(tokens):
    raise ValueError(f"token_embed has {token_rows} rows, but vocab with BOS "
                     f"and PAD has {len(tokens)} tokens: {tokens}")
  compiled = _compile(program, vocab, max_seq_len, compiler_bos, compiler_pad,
                      causal)
  if compiled is None:
    return 0.0
  compiled_layout = params_lib.check_params(compiled.params)
  if compiled_layout.d_model != layout.d_model:
    return 0.0
  given_heads = _given_num_heads(layout, compiled_layout, compiled, num_heads)

  agreeing = 0
  for xs in inputs:
    given_TxD = forward.forward(
        params, _token_ids(tokens, xs, compiler_bos), given_heads, causal)
    candidate_TxD = forward.forward(
        compiled.params, _token_ids(compiled.input_tokens, xs, compiler_bos),
        compiled.num_heads, causal)
    agreeing += np.array_equal(_column_multiset(given_TxD),
                               _column_multiset(candidate_TxD))
  return agreeing / len(inputs)
