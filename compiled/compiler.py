"""Compile a RASP program to tracr's transformer weights, without haiku or JAX.

Stock `tracr.compiler.compiling.compile_rasp_to_model` spends ~95 % of its
time in `assemble.assemble_craft_model`, which calls haiku `init` (a JIT
compile per new shape) only to learn parameter names and shapes, and then
overwrites every weight with numpy matrices built from the craft model. Here
we run the same public tracr stages up to the craft model and write those
matrices straight into numpy arrays. The result is the stock `.params`
exactly: same keys (sorted, as JAX's tree utilities leave them), same shapes,
float32, bit-identical values. `tests/compiler_test.py` checks this.

`compile_rasp_to_model_numpy` is three passes, each with its contract:
  rasp_to_craft     RASP program -> craft model and token/index/output spaces
  craft_to_layout   -> module slot per block, residual space, model sizes
  craft_to_params   -> haiku-style float32 params
and reads the output decoding (`CompiledModel.output_decoding`) off the
spaces.
"""

import dataclasses
from typing import Any, Union

import numpy as np
from tracr.compiler import basis_inference
from tracr.compiler import craft_graph_to_model
from tracr.compiler import expr_to_craft_graph
from tracr.compiler import nodes
from tracr.compiler import rasp_to_graph
from tracr.compiler import validating
from tracr.craft import bases
from tracr.craft import transformers
from tracr.rasp import rasp

Params = dict[str, dict[str, np.ndarray]]

# tracr's default special-token names (`tracr.compiler.compiling`), repeated
# so that importing this module does not import haiku.
COMPILER_BOS = "compiler_bos"
COMPILER_PAD = "compiler_pad"


# Output values that survive JSON and msgpack with their type (bool stays bool).
_PLAIN_VALUE_TYPES = (bool, int, float, str)


@dataclasses.dataclass(frozen=True)
class OutputDecoding:
  """How a compiled model's output is read off its residual stream.

  As tracr's unembedding and output encoder do it: a categorical output is
  `values[argmax(residual[dims])]`, a numerical one is `residual[dims[0]]`.
  The values keep their Python type (`[0, 1]` is not `[False, True]`, and
  equality says so); the weights do not hold them (a direction records only
  the order of its values), so they travel beside the weights.

  Attributes:
    dims: residual index of each output-space direction, in output-space
      order (numerical: one dim).
    values: categorical: the typed value of each of those directions, same
      order (tracr sorts them); numerical: ().
    numerical: whether the output is numerical.
  """

  dims: tuple[int, ...]
  values: tuple
  numerical: bool

  def __post_init__(self):
    if not isinstance(self.dims, tuple) or not isinstance(self.values, tuple):
      raise ValueError("OutputDecoding dims and values must be tuples, got "
                       f"{type(self.dims).__name__} and "
                       f"{type(self.values).__name__}")
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
               for d in self.dims) or len(set(self.dims)) != len(self.dims):
      raise ValueError(f"OutputDecoding dims {self.dims} must be distinct "
                       "non-negative ints")
    # dims=(): the output is read by an unembedding matrix (params' unembed).
    if self.numerical and (len(self.dims) > 1 or self.values):
      raise ValueError("a numerical OutputDecoding has one dim and no values, "
                       f"got dims={self.dims}, values={self.values}")
    if not self.numerical and (not self.values or (
        self.dims and len(self.values) != len(self.dims))):
      raise ValueError("a categorical OutputDecoding has one value per dim, "
                       f"got dims={self.dims}, values={self.values}")

  def _typed(self) -> tuple:
    return (self.dims, tuple((type(v), v) for v in self.values),
            self.numerical)

  def __eq__(self, other: Any) -> bool:
    """Typed: values (0, 1) and (False, True) are different decodings,
    though Python calls the tuples equal."""
    if not isinstance(other, OutputDecoding):
      return NotImplemented
    return self._typed() == other._typed()

  def __hash__(self) -> int:
    return hash(self._typed())

  def to_dict(self) -> dict:
    """Plain lists, for JSON and msgpack. Refuses values that would not come
    back with the same type (only bool, int, float and str do)."""
    for value in self.values:
      if type(value) not in _PLAIN_VALUE_TYPES:
        raise ValueError(f"output value {value!r} is a "
                         f"{type(value).__name__}; only bool, int, float and "
                         "str output values can be stored")
    return {"dims": list(self.dims), "values": list(self.values),
            "numerical": self.numerical}

  @classmethod
  def from_dict(cls, raw: Any) -> "OutputDecoding":
    """Inverse of `to_dict`; ValueError naming what is malformed."""
    if not isinstance(raw, dict) or set(raw) != {"dims", "values",
                                                 "numerical"}:
      raise ValueError("an output decoding must be a mapping with exactly "
                       f"dims, values and numerical, got {raw!r}")
    if not isinstance(raw["dims"], list) or not isinstance(
        raw["values"], list) or not isinstance(raw["numerical"], bool):
      raise ValueError("output decoding dims and values must be lists and "
                       f"numerical a bool, got {raw!r}")
    bad = [v for v in raw["values"] if type(v) not in _PLAIN_VALUE_TYPES]
    if bad:
      raise ValueError(f"output values {bad} are not bool, int, float or str")
    return cls(tuple(raw["dims"]), tuple(raw["values"]), raw["numerical"])


@dataclasses.dataclass(frozen=True)
class CompiledModel:
  """Weights plus what is needed to run them without tracr's wrappers.

  Attributes:
    params: haiku-style `{module: {"w"|"b"|"embeddings": float32 array}}`.
    residual_labels: `str` of each residual basis direction, in order.
    input_tokens: token values in token-embedding row order (BOS and PAD
      included); a token's id is its index here, as in tracr's encoder.
    categorical_output: if True the output is the argmax over output_labels,
      otherwise the single output dimension is the (numerical) value.
    output_labels: `str` of each output-space basis direction, in order.
    output_values: the value of each output-space direction, in order.
    num_layers, num_heads, key_size, mlp_hidden_size, causal: the
      `tracr.transformer.model.TransformerConfig` fields that vary.
  """

  params: Params
  residual_labels: list[str]
  input_tokens: list[Any]
  categorical_output: bool
  output_labels: list[str]
  output_values: list[Any]
  num_layers: int
  num_heads: int
  key_size: int
  mlp_hidden_size: int
  causal: bool

  @property
  def output_decoding(self) -> OutputDecoding:
    """The output's residual dims and typed values (see OutputDecoding)."""
    index = {label: i for i, label in enumerate(self.residual_labels)}
    dims = tuple(index[label] for label in self.output_labels)
    if not self.categorical_output:
      return OutputDecoding(dims, (), True)
    return OutputDecoding(dims, tuple(self.output_values), False)


@dataclasses.dataclass(frozen=True)
class CraftStage:
  """What pass 1 hands on: tracr's craft model and the spaces around it.

  Attributes:
    model: the craft model, its blocks in residual order.
    tokens_space: the token directions, BOS and PAD included (tracr's
      sorted order: the token-embedding rows).
    indices_space: the position directions, 0 to max_seq_len - 1.
    output_space: the output SOp's directions.
    categorical_output: whether the output SOp is categorical.
  """

  model: transformers.SeriesWithResiduals
  tokens_space: bases.VectorSpaceWithBasis
  indices_space: bases.VectorSpaceWithBasis
  output_space: bases.VectorSpaceWithBasis
  categorical_output: bool


@dataclasses.dataclass(frozen=True)
class Layout:
  """What pass 2 hands on: each block's module and the model's sizes.

  Attributes:
    module_names: the module ("transformer/layer_L/attn" or ".../mlp") of
      each craft block, in block order.
    residual_space: the residual stream's directions, in order.
    num_layers, num_heads, key_size, mlp_hidden_size: the sizes of tracr's
      `TransformerConfig`.
  """

  module_names: tuple[str, ...]
  residual_space: bases.VectorSpaceWithBasis
  num_layers: int
  num_heads: int
  key_size: int
  mlp_hidden_size: int


def _check_compilable(program: rasp.SOp, vocab: set, compiler_bos: str,
                      compiler_pad: str) -> None:
  """Stock tracr's checks before compiling, in its order and words."""
  if compiler_bos in vocab:
    raise ValueError(
        "Compiler BOS token must not be present in the vocab. "
        f"Found '{compiler_bos}' in {vocab}"
    )
  if compiler_pad in vocab:
    raise ValueError(
        "Compiler PAD token must not be present in the vocab. "
        f"Found '{compiler_pad}' in {vocab}"
    )
  unsupported_exprs = validating.static_validate(program)
  if unsupported_exprs:
    error_message = "\n".join(
        f"{expr.expr.name}: {expr.reason}" for expr in unsupported_exprs
    )
    raise NotImplementedError(
        f"Unsupported RASP expressions:\n{error_message}"
    )


def rasp_to_craft(
    program: rasp.SOp,
    vocab: set,
    max_seq_len: int,
    compiler_bos: str = COMPILER_BOS,
    compiler_pad: str = COMPILER_PAD,
    mlp_exactness: int = 100,
) -> CraftStage:
  """Pass 1: RASP program -> craft model and its token/index/output spaces.

  Contract: runs tracr's own stages (graph, basis inference, craft
  components, craft model) and builds the spaces as
  `craft_model_to_transformer` does, so a program stock tracr rejects raises
  the same error type and message here: ValueError for BOS/PAD in `vocab`
  or a program without tokens, NotImplementedError for unsupported
  expressions.
  """
  _check_compilable(program, vocab, compiler_bos, compiler_pad)
  extracted = rasp_to_graph.extract_rasp_graph(program)
  graph, sources, sink = extracted.graph, extracted.sources, extracted.sink
  basis_inference.infer_bases(graph, sink, vocab, max_seq_len)
  expr_to_craft_graph.add_craft_components_to_rasp_graph(
      graph,
      bos_dir=bases.BasisDirection(rasp.tokens.label, compiler_bos),
      mlp_exactness=mlp_exactness,
  )
  craft_model = craft_graph_to_model.craft_graph_to_model(graph, sources)

  if rasp.tokens.label not in graph.nodes:
    raise ValueError(
        f"Failed to find a node with label {rasp.tokens.label}. "
        "This is probably because your RASP program does not include "
        "rasp.tokens. A program must include rasp.tokens to be compiled."
    )
  tokens_value_set = graph.nodes[rasp.tokens.label][nodes.VALUE_SET].union(
      {compiler_bos, compiler_pad}
  )
  return CraftStage(
      model=craft_model,
      tokens_space=bases.VectorSpaceWithBasis.from_values(
          rasp.tokens.label, tokens_value_set),
      indices_space=bases.VectorSpaceWithBasis.from_values(
          rasp.indices.label, range(max_seq_len)),
      output_space=bases.VectorSpaceWithBasis(sink[nodes.OUTPUT_BASIS]),
      categorical_output=rasp.is_categorical(sink[nodes.EXPR]),
  )


def _module_names(blocks: list[transformers.Block]) -> tuple[str, ...]:
  """Places each half-layer block in the next free attn/mlp slot.

  As in assemble.py: a block goes to the first slot of its type after the
  previous block's slot; skipped slots stay all-zero.
  """
  candidates = iter(
      f"transformer/layer_{layer}/{kind}"
      for layer in range(len(blocks))
      for kind in ("attn", "mlp")
  )
  names = []
  for block in blocks:
    kind = "mlp" if isinstance(block, transformers.MLP) else "attn"
    name = next(candidates)
    while kind not in name:
      name = next(candidates)
    names.append(name)
  return tuple(names)


def craft_to_layout(craft: CraftStage) -> Layout:
  """Pass 2: craft model -> module slots, residual space and sizes.

  Contract: the sizes are stock tracr's `model_config` fields and the
  residual space's directions are its `residual_labels`, as
  `assemble._get_model_config_and_module_names` and
  `craft_model_to_transformer` derive them (1 head of size 1 without
  attention, a hidden size of 1 without MLPs).
  """
  blocks = craft.model.blocks
  module_names = _module_names(blocks)
  heads = [list(b.as_multi().heads()) for b in blocks
           if not isinstance(b, transformers.MLP)]
  mlps = [b for b in blocks if isinstance(b, transformers.MLP)]
  return Layout(
      module_names=module_names,
      residual_space=bases.join_vector_spaces(
          craft.model.residual_space, craft.tokens_space,
          craft.indices_space, craft.output_space),
      num_layers=int(module_names[-1].split("_")[1].split("/")[0]) + 1,
      num_heads=max((len(h) for h in heads), default=1),
      key_size=max((max(head.w_qk.matrix.shape) for h in heads
                    for head in h), default=1),
      mlp_hidden_size=max((m.fst.output_space.num_dims for m in mlps),
                          default=1),
  )


class _Projector:
  """`vectorspace_fns.project(residual, space).matrix`, without O(n^2) loops."""

  def __init__(self, residual_space: bases.VectorSpaceWithBasis):
    self.num_dims = residual_space.num_dims
    self.index = {d: i for i, d in enumerate(residual_space.basis)}

  def __call__(self, space: bases.VectorSpaceWithBasis) -> np.ndarray:
    matrix = np.zeros((self.num_dims, space.num_dims))
    for j, direction in enumerate(space.basis):
      i = self.index.get(direction)
      if i is not None:
        matrix[i, j] = 1.0
    return matrix


def _zero_layers(layout: Layout) -> Params:
  """Every layer's attn and mlp weights, all zero (float64)."""
  d_model = layout.residual_space.num_dims
  width = layout.num_heads * layout.key_size
  hidden = layout.mlp_hidden_size
  params: Params = {}
  for layer in range(layout.num_layers):
    attn = f"transformer/layer_{layer}/attn"
    mlp = f"transformer/layer_{layer}/mlp"
    for name in ("query", "key", "value"):
      params[f"{attn}/{name}"] = {"b": np.zeros(width),
                                  "w": np.zeros((d_model, width))}
    params[f"{attn}/linear"] = {"b": np.zeros(d_model),
                                "w": np.zeros((width, d_model))}
    params[f"{mlp}/linear_1"] = {"b": np.zeros(hidden),
                                 "w": np.zeros((d_model, hidden))}
    params[f"{mlp}/linear_2"] = {"b": np.zeros(d_model),
                                 "w": np.zeros((hidden, d_model))}
  return params


def _write_mlp(params: Params, name: str, block: transformers.MLP,
               project: _Projector) -> None:
  """The MLP's two matrices into its slot; unused hidden units stay zero."""
  hidden = block.fst.output_space.num_dims
  params[f"{name}/linear_1"]["w"][:, :hidden] = (
      project(block.fst.input_space) @ block.fst.matrix)
  params[f"{name}/linear_2"]["w"][:hidden, :] = (
      block.snd.matrix @ project(block.snd.output_space).T)


def _write_attention(params: Params, name: str,
                     block: Union[transformers.AttentionHead,
                                  transformers.MultiAttentionHead],
                     key_size: int, project: _Projector) -> None:
  """Each head's W_QK and W_OV into its columns of the slot: the query
  carries W_QK and the key projects; the value carries W_OV and the output
  projects back. Heads and widths short of the layout stay zero."""
  d_model = project.num_dims
  for h, head in enumerate(block.as_multi().heads()):
    cols = slice(h * key_size, (h + 1) * key_size)
    qk_size = head.w_qk.matrix.shape[1]
    ov_size = head.w_ov.matrix.shape[1]
    query = np.zeros((d_model, key_size))
    query[:, :qk_size] = project(head.w_qk.left_space) @ head.w_qk.matrix
    key = np.zeros((d_model, key_size))
    key[:, :qk_size] = project(head.w_qk.right_space)
    value = np.zeros((d_model, key_size))
    value[:, :ov_size] = project(head.w_ov.input_space) @ head.w_ov.matrix
    linear = np.zeros((key_size, d_model))
    linear[:ov_size, :] = project(head.w_ov.output_space).T
    params[f"{name}/query"]["w"][:, cols] = query
    params[f"{name}/key"]["w"][:, cols] = key
    params[f"{name}/value"]["w"][:, cols] = value
    params[f"{name}/linear"]["w"][cols, :] = linear


def _embeddings(craft: CraftStage, project: _Projector) -> Params:
  """Token and position embeddings: every token also sets the 'one'
  direction; position row 0 is all zero."""
  token_embed = project(craft.tokens_space).T.copy()
  one = project.index.get(bases.BasisDirection("one"))
  if one is not None:
    token_embed[:, one] += 1.0
  pos_embed = np.concatenate(
      [np.zeros((1, project.num_dims)), project(craft.indices_space).T],
      axis=0)
  return {"token_embed": {"embeddings": token_embed},
          "pos_embed": {"embeddings": pos_embed}}


def craft_to_params(craft: CraftStage, layout: Layout) -> Params:
  """Pass 3: craft model and layout -> haiku-style params, in numpy.

  Contract: stock tracr's `.params` bit for bit: the same module and weight
  names in sorted order (as JAX's tree utilities leave them), the same
  shapes, float32, and identical values, because every matrix is the same
  float64 product assemble.py computes, cast once at the end.
  """
  project = _Projector(layout.residual_space)
  params = _zero_layers(layout)
  for name, block in zip(layout.module_names, craft.model.blocks):
    if isinstance(block, transformers.MLP):
      _write_mlp(params, name, block, project)
    else:
      _write_attention(params, name, block, layout.key_size, project)
  params.update(_embeddings(craft, project))
  return {module: {k: v.astype(np.float32) for k, v in sorted(p.items())}
          for module, p in sorted(params.items())}


def compile_rasp_to_model_numpy(
    program: rasp.SOp,
    vocab: set,
    max_seq_len: int,
    causal: bool = False,
    compiler_bos: str = COMPILER_BOS,
    compiler_pad: str = COMPILER_PAD,
    mlp_exactness: int = 100,
) -> CompiledModel:
  """Compiles `program` like stock tracr, but assembles weights in numpy.

  The passes in order: `rasp_to_craft`, `craft_to_layout`,
  `craft_to_params`; errors are stock tracr's (see `rasp_to_craft`).
  """
  craft = rasp_to_craft(program, vocab, max_seq_len, compiler_bos,
                        compiler_pad, mlp_exactness)
  layout = craft_to_layout(craft)
  return CompiledModel(
      params=craft_to_params(craft, layout),
      residual_labels=[str(d) for d in layout.residual_space.basis],
      input_tokens=[d.value for d in craft.tokens_space.basis],
      categorical_output=craft.categorical_output,
      output_labels=[str(d) for d in craft.output_space.basis],
      output_values=[d.value for d in craft.output_space.basis],
      num_layers=layout.num_layers,
      num_heads=layout.num_heads,
      key_size=layout.key_size,
      mlp_hidden_size=layout.mlp_hidden_size,
      causal=causal,
  )


def compile_rasp_to_params(
    program: rasp.SOp,
    vocab: set,
    max_seq_len: int,
    causal: bool = False,
    compiler_bos: str = COMPILER_BOS,
    compiler_pad: str = COMPILER_PAD,
    mlp_exactness: int = 100,
) -> Params:
  """Equals `compile_rasp_to_model(...).params` as numpy, ~300x faster."""
  return compile_rasp_to_model_numpy(
      program, vocab, max_seq_len, causal, compiler_bos, compiler_pad,
      mlp_exactness,
  ).params
