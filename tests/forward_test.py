"""The numpy forward pass equals tracr's own compiled model."""

import numpy as np
import pytest
from tracr.compiler import compiling

from compiled import compiler
from configs import data
import single_sequence as forward
from encoding import synthetic
from rasp_gen import convert, sampler

BOS = compiler.COMPILER_BOS


def _cases():
  """(program, vocab, max_seq_len, causal, input lengths) to compare.

  Stock compilation and every new input length cost seconds (haiku JIT), so
  the cases are few: the two-head program (also causal, also shorter
  inputs) and two sampled programs, one numerical.
  """
  config = data.get_config().sampler
  two_heads = (synthetic.TWO_HEADS, synthetic.TWO_HEADS_VOCAB,
               synthetic.TWO_HEADS_MAX_SEQ_LEN)
  cases = [(*two_heads, False, (2, 4)), (*two_heads, True, (4,))]
  for index in (1, 56):  # (0, 56) has a numerical Map and Aggregate.
    sample = sampler.sample_program(sampler.sampler_rng(0, index), config)
    cases.append((sample.program, sample.vocab, sample.max_seq_len, False,
                  (sample.max_seq_len,)))
  return cases


@pytest.mark.parametrize("program, vocab, max_seq_len, causal, lengths",
                         _cases(), ids=["two_heads", "two_heads_causal",
                                        "sampled", "sampled_numerical"])
def test_forward_matches_stock_tracr(program, vocab, max_seq_len, causal,
                                     lengths):
  model = compiling.compile_rasp_to_model(
      convert.to_rasp(program), set(vocab), max_seq_len, causal=causal,
      compiler_bos=BOS)
  rng = np.random.default_rng(0)
  for length in lengths:
    inputs = [BOS] + list(rng.choice(vocab, length))
    expected_TxD = np.asarray(model.apply(inputs).transformer_output[0])
    ids = np.array(model.input_encoder.encode(inputs))
    got_TxD = forward.forward(model.params, ids, model.model_config.num_heads,
                              causal=causal)
    np.testing.assert_allclose(got_TxD, expected_TxD, atol=1e-5,
                               err_msg=f"{program}\ninputs {inputs}")


def test_forward_rejects_too_long_inputs_and_bad_heads():
  model = synthetic.two_heads_model()
  too_long = np.zeros(synthetic.TWO_HEADS_MAX_SEQ_LEN + 2, np.int32)
  with pytest.raises(ValueError, match="pos_embed has 5 rows"):
    forward.forward(model.params, too_long, model.num_heads)
  with pytest.raises(ValueError, match="num_heads"):
    forward.forward(model.params, too_long[:2], 5)
