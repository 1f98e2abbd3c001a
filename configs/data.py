"""Dataset generation: which programs are sampled and how they are stored."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0  # Program i of a run is drawn from rng([seed, i]).
  config.num_programs = 20_000  # Programs to sample (before deduplication).
  config.validation_fraction = 0.05  # Share of distinct programs per split,
  config.test_fraction = 0.05  # assigned by a hash of the canonical program.
  config.shard_size = 500  # Records per output shard.
  config.num_workers = 0  # Worker processes; 0 means one per CPU core.
  config.compile_timeout_s = 60.0  # A sample (draw + compile) taking longer
  # is skipped and counted in the manifest.

  sampler = ml_collections.ConfigDict()
  sampler.length = (2, 8)  # Instructions per program (inclusive range).
  sampler.vocab_size = (3, 12)  # Tokens are range(offset, offset + size).
  sampler.vocab_offset = (0, 1)  # So both {0..n-1} and {1..n} appear.
  sampler.max_seq_len = (4, 10)  # Compiled max_seq_len (inclusive range).
  # Relative weights of the operators that grow a program; Aggregate and
  # SelectorWidth each also write the Select they read.
  sampler.operator_weights = ml_collections.ConfigDict(dict(
      MAP=3.0, SEQUENCE_MAP=2.0, AGGREGATE=2.0, SELECTOR_WIDTH=1.0))
  sampler.numerical_share = 0.2  # Chance that a Map is numerical.
  sampler.index_lookup_share = 0.6  # Chance a categorical Aggregate's
  # selector is Select(indices, q, EQ), which tracr compiles exactly.
  sampler.prefer_unused = 0.8  # Chance an argument is a not-yet-used variable.
  sampler.max_value_set_size = 16  # Bounds the residual width per variable.
  sampler.max_sequence_map_product = 144  # Bounds a SequenceMap's MLP width.
  sampler.num_check_inputs = 32  # Random inputs for validation/degeneracy.
  sampler.max_output_share = 0.75  # Most common output's share of them.
  # Faithfulness: the compiled weights must give rasp.evaluate's output on
  # every input when there are at most this many, else on the check inputs,
  # num_faithful_inputs more random ones and each constant full-length one.
  sampler.faithful_exhaustive_limit = 500
  sampler.num_faithful_inputs = 64
  sampler.max_attempts = 1000  # Draws before sample_program gives up.
  # One label per set of programs with the same weights (rasp_gen/labels.py):
  # the first table function equal on the arguments' values, the least
  # argument order of symmetric SequenceMaps. The draws are the same.
  sampler.canonical_labels = True
  # The wider language, for the read-out decompiler (configs/wide_data.py;
  # rasp_gen/sampler.py's docstring). The meta-model's tokens cannot name a
  # table, so training drops such records. Each share is off at 0 and then
  # left out of the dataset's identity (rasp_gen/generate.identity_config),
  # so datasets made before these knobs keep theirs.
  sampler.table_share = 0.0  # Chance a categorical-input Map or categorical
  # SequenceMap is a random Table (a numerical SequenceMap: random Linear
  # factors); one no named function accepts (strings) always is.
  sampler.table_num_values = (2, 4)  # Distinct outputs a table draws from
  # (at most 10 ints or letters; bools are two); read when table_share > 0.
  sampler.custom_select_share = 0.0  # Chance a Select's predicate is a Table
  # (offset q == k + c, k < q - c, a constant key, a lookup, a relation).
  sampler.string_vocab_share = 0.0  # Chance the vocab is letters "a", ...
  sampler.reuse_select_share = 0.0  # Chance an Aggregate or SelectorWidth
  # reads a selector made before instead of a new Select.
  # Long programs (length above ~10): grow until the newest variable reads
  # exactly `length` instructions and drop the rest as dead code (growing
  # `length` instructions none of them dead rarely succeeds there), and
  # bound a numerical SequenceMap's |x values| * |y values| (0: unbounded;
  # chained ones multiply value sets without end).
  sampler.grow_past_dead_code = False
  sampler.max_numerical_product = 0
  config.sampler = sampler
  return config
