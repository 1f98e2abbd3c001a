"""Small in-memory datasets of sampled, compiled programs.

For tests and benchmarks that should not need a generated dataset on disk:
the records are the same `records.record_to_bytes` bytes the generator
writes.
"""

import ml_collections

from compiled import compiler
from rasp_gen import convert, records, sampler
from rasp_gen.program import Instruction, Operator, Program

# Sampled programs almost never put two attention heads in one layer; this
# one does (its SelectorWidth and Aggregate both read only the inputs).
TWO_HEADS = Program((
    Instruction(Operator.SELECT, "PRED_LT", ("tokens", "tokens"), "v1"),
    Instruction(Operator.SELECTOR_WIDTH, None, ("v1",), "v2"),
    Instruction(Operator.SELECT, "PRED_EQ", ("indices", "indices"), "v3"),
    Instruction(Operator.AGGREGATE, None, ("v3", "tokens"), "v4"),
    Instruction(Operator.SEQUENCE_MAP, "LAM_ADD", ("v2", "v4"), "v5"),
))
TWO_HEADS_VOCAB = (1, 2, 3)
TWO_HEADS_MAX_SEQ_LEN = 4


def two_heads_model() -> compiler.CompiledModel:
  return compiler.compile_rasp_to_model_numpy(
      convert.to_rasp(TWO_HEADS), set(TWO_HEADS_VOCAB), TWO_HEADS_MAX_SEQ_LEN)


def samples(seed: int, count: int, sampler_config: ml_collections.ConfigDict
            ) -> list[sampler.SampledProgram]:
  """Programs `sampler_rng(seed, i)`, i < count, compiled by the sampler."""
  return [sampler.sample_program(sampler.sampler_rng(seed, i), sampler_config)
          for i in range(count)]


def two_heads_sample() -> sampler.SampledProgram:
  """TWO_HEADS with its input space and compiled model, as a sample."""
  return sampler.SampledProgram(TWO_HEADS, TWO_HEADS_VOCAB,
                                TWO_HEADS_MAX_SEQ_LEN, two_heads_model())


def to_record(sample: sampler.SampledProgram, index: int) -> records.Record:
  """`sample`'s record as the generator stores it, in the train split."""
  return records.Record(
      program=sample.program, params=sample.compiled.params,
      num_heads=sample.compiled.num_heads, vocab=sample.vocab,
      max_seq_len=sample.max_seq_len, compiler_bos=compiler.COMPILER_BOS,
      compiler_pad=compiler.COMPILER_PAD, index=index, split="train",
      output=sample.compiled.output_decoding)


def record_source(seed: int, count: int,
                  sampler_config: ml_collections.ConfigDict) -> list[bytes]:
  """Record bytes of `samples(seed, count, ...)`."""
  return [records.record_to_bytes(to_record(sample, i))
          for i, sample in enumerate(samples(seed, count, sampler_config))]
