"""Small compiled models for the read-out's pass tests."""

from tracr.rasp import rasp

from compiled import compiler, saved
from readout import program as program_pass


def compile_model(sop: rasp.SOp, vocab: set, max_seq_len: int
                  ) -> saved.SavedModel:
  """`sop` compiled by the fast compiler (tracr's exact params)."""
  compiled = compiler.compile_rasp_to_model_numpy(sop, set(vocab), max_seq_len)
  return saved.SavedModel(compiled.params, tuple(sorted(vocab)), max_seq_len,
                          compiler.COMPILER_BOS, compiler.COMPILER_PAD,
                          compiled.num_heads, False, compiled.output_decoding)


def started(sop: rasp.SOp, vocab: set, max_seq_len: int):
  """A read of `sop`'s weights with its embeddings and constraints read."""
  return program_pass.start(compile_model(sop, vocab, max_seq_len))
