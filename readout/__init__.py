"""The read-out: a program read straight off a model's weights, no training.

tracr builds every module from one recipe per RASP operation
(`tracr/craft/chamber`), so the weights fix the dataflow and every
function's table up to a relabeling of intermediate values. The read-out
runs tracr's chain in reverse, one pass a module:

  basis       how the weights are seen: the residual stream in tracr's basis
  embeddings  `one`, BOS, the token and index directions
  variables   which directions belong together (one-hot groups)
  attention   Selects, Aggregates, SelectorWidths' heads
  mlps        Maps, SequenceMaps and widths, read by probing
  values      what each direction stands for; canonical names
  program     the assembled Program; `read_program`, `read_and_verify`

The passes share one `state.ReadState`. Only the params, vocabulary,
max_seq_len and output decoding are read, never tracr's residual labels, so
a permuted residual stream reads the same. The result is a candidate, not a
verdict: `read_and_verify` checks it like any other. `ReadoutError` says
where the weights leave tracr's recipes.
"""

from readout.basis import tracr_basis_views
from readout.errors import ReadoutError
from readout.program import read_and_verify, read_program

__all__ = ["ReadoutError", "read_and_verify", "read_program",
           "tracr_basis_views"]
