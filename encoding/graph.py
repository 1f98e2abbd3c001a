"""Compiled weights as a sparse graph: neurons are nodes, weights are edges.

tracr models are tiny sparse graphs (~2 % of parameters nonzero, all biases
zero), and their function is unchanged by any permutation of the residual
stream, of MLP hidden neurons and of the dimensions inside an attention head.
A graph whose nodes carry no residual index makes those symmetries exact for
a permutation-equivariant encoder, so nothing has to be learned from
augmented data (Graph Metanetworks, Lim et al. 2023; Neural Graphs, Kofinas
et al. 2024).

Nodes (`NODE_TYPES`):
  RESIDUAL   one per residual dimension; no features but its type.
  TOKEN      one per token-embedding row: its rank (the row: tracr's token
             order) and value (`value_id`: whole numbers and bools; other
             floats, BOS, PAD and other strings by kind).
  POSITION   one per position-embedding row: its position.
  HEAD       one per attention head that has a nonzero weight.
  QK, OV     one per used query/key (value/output) dimension of a head.
  NEURON     one per used MLP hidden unit.
  OUTPUT     one per output-space direction: rank and value, or a single
             OUTPUT_NUMERICAL node for a numerical output.
Every node but RESIDUAL carries its layer (0 embeddings/output, l + 1 for
transformer layer l) and an index (rank or position, else 0).

Edges (`EDGE_KINDS`), one per nonzero weight, directed as the computation
flows, with the weight's value: TOKEN_EMBED and POS_EMBED (row -> residual),
QUERY and KEY (residual -> QK), VALUE (residual -> OV), OUTPUT (OV ->
residual), MLP_IN (residual -> NEURON), MLP_OUT (NEURON -> residual), plus
HEAD_QK / HEAD_OV (dimension -> its head) and UNEMBED (residual -> OUTPUT),
value 1.

With `use_values=False` token and output values are replaced by UNKNOWN
(BOS/PAD stay marked): the graph then holds only what the params hold.
"""

import dataclasses
from typing import Any, Optional, Sequence

import ml_collections
import numpy as np

from compiled import params as params_lib
from compiled.compiler import OutputDecoding
from compiled.params import Params
from encoding.limits import LimitExceeded

NODE_TYPES = ("PAD", "RESIDUAL", "TOKEN", "POSITION", "HEAD", "QK", "OV",
              "NEURON", "OUTPUT", "OUTPUT_NUMERICAL")
NODE_TYPE_IDS = {name: i for i, name in enumerate(NODE_TYPES)}
EDGE_KINDS = ("PAD", "TOKEN_EMBED", "POS_EMBED", "QUERY", "KEY", "VALUE",
              "OUTPUT", "HEAD_QK", "HEAD_OV", "MLP_IN", "MLP_OUT", "UNEMBED")
EDGE_KIND_IDS = {name: i for i, name in enumerate(EDGE_KINDS)}
# What the decoder attends to after message passing: everything but hidden
# units (QK/OV dimensions, MLP neurons), whose states flowed into these.
SUMMARY_TYPE_IDS = [NODE_TYPE_IDS[t] for t in (
    "RESIDUAL", "TOKEN", "POSITION", "HEAD", "OUTPUT", "OUTPUT_NUMERICAL")]

# Value ids: 0 none, then the specials, then ints in [-VALUE_RANGE,
# VALUE_RANGE] (larger magnitudes are clipped, and marked as such).
VALUE_RANGE = 256
_SPECIAL_VALUES = ("NONE", "UNKNOWN", "BOS", "PAD", "STRING", "FLOAT",
                   "FALSE", "TRUE", "BELOW_RANGE", "ABOVE_RANGE")
_SPECIAL_IDS = {name: i for i, name in enumerate(_SPECIAL_VALUES)}
NUM_VALUE_IDS = len(_SPECIAL_VALUES) + 2 * VALUE_RANGE + 1


def default_graph_config() -> ml_collections.ConfigDict:
  """Graph-encoding settings; configs include this as their `graph` group."""
  config = ml_collections.ConfigDict()
  # Token and output values as node features (False: only what params hold).
  config.use_values = True
  # A batch is one disjoint union of its examples' graphs, padded to the
  # first bucket (nodes per example, edges per example, summary nodes) with
  # nodes <= n * batch, edges <= e * batch and every example's summary
  # nodes <= s: message passing costs what the batch holds, not batch x its
  # largest model. The last bucket is also the limit for one model; larger
  # ones raise LimitExceeded. It is sized for hand-written models of 5-6
  # layers and a residual stream of ~250 (a few thousand nonzero weights).
  config.buckets = ((144, 320, 128), (288, 640, 256), (2048, 8192, 1024))
  config.max_layers = 12  # Most transformer layers accepted.
  config.max_index = 64  # Ranks and positions are embedded below this.
  return config


def feature_bounds(config: ml_collections.ConfigDict) -> dict[str, int]:
  """Exclusive upper bounds of the int node/edge features under `config`.

  Size the meta-model's embedding tables from these: JAX does not fail on an
  out-of-range embedding id, it silently reads a wrong row.
  """
  return {"node_type": len(NODE_TYPES), "node_layer": config.max_layers + 1,
          "node_index": config.max_index, "node_value": NUM_VALUE_IDS,
          "edge_kind": len(EDGE_KINDS)}


@dataclasses.dataclass(frozen=True)
class WeightGraph:
  """One model's graph, unpadded; field names are the batch keys.

  Attributes:
    node_type, node_layer, node_index, node_value: int32 [N].
    edge_source, edge_target: int32 [E], node ids.
    edge_kind: int32 [E], index into EDGE_KINDS.
    edge_value: float32 [E], the weight.
  """

  node_type: np.ndarray
  node_layer: np.ndarray
  node_index: np.ndarray
  node_value: np.ndarray
  edge_source: np.ndarray
  edge_target: np.ndarray
  edge_kind: np.ndarray
  edge_value: np.ndarray

  @property
  def num_nodes(self) -> int:
    return len(self.node_type)

  @property
  def num_edges(self) -> int:
    return len(self.edge_kind)


_DTYPES = {f.name: np.float32 if f.name == "edge_value" else np.int32
           for f in dataclasses.fields(WeightGraph)}


def value_id(value: Any, bos: Optional[str] = None,
             pad: Optional[str] = None) -> int:
  """The embedding id of a token or output value (see `_SPECIAL_VALUES`).

  Bools are FALSE and TRUE (never 0 and 1); strings BOS, PAD or STRING;
  whole numbers (ints, and floats like 2.0) in [-VALUE_RANGE, VALUE_RANGE]
  their own id, beyond it BELOW_RANGE or ABOVE_RANGE (however large, and
  infinities too); other floats (0.5, NaN) FLOAT; anything else UNKNOWN.
  """
  if isinstance(value, (bool, np.bool_)):
    return _SPECIAL_IDS["TRUE" if value else "FALSE"]
  if isinstance(value, str):
    if value == bos:
      return _SPECIAL_IDS["BOS"]
    if value == pad:
      return _SPECIAL_IDS["PAD"]
    return _SPECIAL_IDS["STRING"]
  if isinstance(value, (float, np.floating)):
    if np.isnan(value) or (np.isfinite(value) and value != np.floor(value)):
      return _SPECIAL_IDS["FLOAT"]
  elif not isinstance(value, (int, np.integer)):
    return _SPECIAL_IDS["UNKNOWN"]
  # A whole number (or an infinity); compared as it is: exact for any int.
  if value < -VALUE_RANGE:
    return _SPECIAL_IDS["BELOW_RANGE"]
  if value > VALUE_RANGE:
    return _SPECIAL_IDS["ABOVE_RANGE"]
  return len(_SPECIAL_VALUES) + VALUE_RANGE + int(value)


class _Builder:
  """Accumulates nodes and edges; node ids are positions in the lists."""

  def __init__(self):
    self.nodes: list[tuple[int, int, int, int]] = []
    self.edges: list[tuple[np.ndarray, np.ndarray, int, np.ndarray]] = []

  def add_nodes(self, node_type: str, count: int, layer: int = 0,
                index: Optional[Sequence[int]] = None,
                value: Optional[Sequence[int]] = None) -> np.ndarray:
    first = len(self.nodes)
    index = list(index) if index is not None else [0] * count
    value = list(value) if value is not None else [0] * count
    self.nodes += [(NODE_TYPE_IDS[node_type], layer, i, v)
                   for i, v in zip(index, value)]
    return np.arange(first, first + count)

  def add_edges(self, kind: str, source_ids: np.ndarray,
                target_ids: np.ndarray, matrix_SxT: np.ndarray) -> None:
    """An edge source_ids[s] -> target_ids[t] per nonzero matrix[s, t]."""
    s, t = np.nonzero(matrix_SxT)
    self.edges.append((source_ids[s], target_ids[t], EDGE_KIND_IDS[kind],
                       matrix_SxT[s, t]))

  def build(self) -> WeightGraph:
    node_type, layer, index, value = (np.array(column, np.int32).reshape(-1)
                                      for column in zip(*self.nodes))
    sources, targets, kinds, values = zip(*self.edges)
    return WeightGraph(
        node_type, layer, index, value,
        np.concatenate(sources).astype(np.int32),
        np.concatenate(targets).astype(np.int32),
        np.concatenate([np.full(len(v), k, np.int32)
                        for k, v in zip(kinds, values)]),
        np.concatenate(values).astype(np.float32))


def _used(*matrices: np.ndarray) -> np.ndarray:
  """Indices of the columns that are nonzero in any of the [*, W] matrices."""
  return np.flatnonzero(np.any(np.concatenate(matrices) != 0, axis=0))


def check_weights(params: Params, input_tokens: Sequence[Any],
                  output: OutputDecoding, num_heads: Optional[int]
                  ) -> params_lib.Layout:
  """Pass 1: the layout of weights a graph can describe, else ValueError.

  Accepts tracr params (`params.check_params`) whose attention splits into
  `num_heads` (None: one head), whose biases are zero (the graph has no
  bias nodes) and that have no `unembed` matrix, with a token-embedding
  row per input token and output dims inside the residual stream. Reads
  no limits: a valid model is never rejected here.
  """
  layout = params_lib.check_params(params)
  params_lib.check_num_heads(layout, num_heads or 1)
  if params_lib.UNEMBED in params:
    raise ValueError("the weights read their output with an unembed matrix "
                     "(another residual basis); the weight graph reads "
                     "tracr's output directions, so see them in tracr's "
                     "basis first (readout.tracr_basis_views)")
  for key, module in params.items():
    if "b" in module and np.any(np.asarray(module["b"]) != 0):
      raise ValueError(f"params[{key!r}]['b'] is nonzero; the weight graph "
                       "has no bias nodes because tracr's biases are zero")
  token_rows = params[params_lib.TOKEN_EMBED]["embeddings"].shape[0]
  if len(input_tokens) != token_rows:
    raise ValueError(f"token_embed has {token_rows} rows but there are "
                     f"{len(input_tokens)} input tokens")
  if any(d >= layout.d_model for d in output.dims):
    raise ValueError(f"output dims {list(output.dims)} do not fit a residual "
                     f"stream of {layout.d_model}")
  return layout


def _weight(params: Params, key: str, name: str = "w") -> np.ndarray:
  return np.asarray(params[key][name], np.float32)


def _add_embeddings(graph: _Builder, params: Params, d_model: int,
                    token_values: Sequence[int]) -> np.ndarray:
  """RESIDUAL, TOKEN and POSITION nodes with the embedding edges; returns
  the residual node ids."""
  residual = graph.add_nodes("RESIDUAL", d_model)
  tokens = graph.add_nodes("TOKEN", len(token_values),
                           index=range(len(token_values)), value=token_values)
  graph.add_edges("TOKEN_EMBED", tokens, residual,
                  _weight(params, params_lib.TOKEN_EMBED, "embeddings"))
  position_embed = _weight(params, params_lib.POS_EMBED, "embeddings")
  positions = graph.add_nodes("POSITION", len(position_embed),
                              index=range(len(position_embed)))
  graph.add_edges("POS_EMBED", positions, residual, position_embed)
  return residual


def _add_attention(graph: _Builder, params: Params, layer: int,
                   heads: int, residual: np.ndarray) -> None:
  """Per head with a nonzero weight: a HEAD node, its used QK and OV
  dimensions, their edges to the residual stream and to the head."""
  query, key, value, linear = (_weight(params, params_lib.attn_key(layer, n))
                               for n in params_lib.ATTN)
  output_T = linear.T
  key_size = query.shape[1] // heads
  for head in range(heads):
    part = slice(head * key_size, (head + 1) * key_size)
    qk = _used(query[:, part], key[:, part])
    ov = _used(value[:, part], output_T[:, part])
    if not len(qk) and not len(ov):
      continue
    head_id = graph.add_nodes("HEAD", 1, layer + 1)
    qk_ids = graph.add_nodes("QK", len(qk), layer + 1)
    ov_ids = graph.add_nodes("OV", len(ov), layer + 1)
    graph.add_edges("QUERY", residual, qk_ids, query[:, part][:, qk])
    graph.add_edges("KEY", residual, qk_ids, key[:, part][:, qk])
    graph.add_edges("VALUE", residual, ov_ids, value[:, part][:, ov])
    graph.add_edges("OUTPUT", ov_ids, residual, output_T[:, part][:, ov].T)
    graph.add_edges("HEAD_QK", qk_ids, head_id, np.ones((len(qk), 1)))
    graph.add_edges("HEAD_OV", ov_ids, head_id, np.ones((len(ov), 1)))


def _add_mlp(graph: _Builder, params: Params, layer: int,
             residual: np.ndarray) -> None:
  """A NEURON node per used hidden unit, with its in and out edges."""
  mlp_in = _weight(params, params_lib.mlp_key(layer, "linear_1"))
  mlp_out = _weight(params, params_lib.mlp_key(layer, "linear_2"))
  used = _used(mlp_in, mlp_out.T)
  neurons = graph.add_nodes("NEURON", len(used), layer + 1)
  graph.add_edges("MLP_IN", residual, neurons, mlp_in[:, used])
  graph.add_edges("MLP_OUT", neurons, residual, mlp_out[used])


def _add_output(graph: _Builder, output: OutputDecoding,
                output_values: Sequence[int], residual: np.ndarray) -> None:
  """OUTPUT nodes (one OUTPUT_NUMERICAL node for a numerical output), each
  unembedded from its residual dim."""
  if output.numerical:
    outputs = graph.add_nodes("OUTPUT_NUMERICAL", 1)
  else:
    outputs = graph.add_nodes("OUTPUT", len(output.dims),
                              index=range(len(output.dims)),
                              value=output_values)
  unembed = np.zeros((len(residual), len(outputs)), np.float32)
  unembed[list(output.dims), np.arange(len(outputs))] = 1
  graph.add_edges("UNEMBED", residual, outputs, unembed)


def construct_graph(params: Params, layout: params_lib.Layout,
                    input_tokens: Sequence[Any], output: OutputDecoding,
                    num_heads: Optional[int], use_values: bool,
                    compiler_bos: str, compiler_pad: str) -> WeightGraph:
  """Pass 2: the graph of weights `check_weights` accepted, whatever its size.

  Nodes come in a fixed order (residual, tokens, positions, then per layer
  its heads and neurons, then outputs), edges in the order of their nodes;
  without `use_values` token and output values are UNKNOWN, BOS and PAD
  still marked.
  """
  unknown = _SPECIAL_IDS["UNKNOWN"]
  token_values = [value_id(t, compiler_bos, compiler_pad)
                  if use_values or t in (compiler_bos, compiler_pad)
                  else unknown for t in input_tokens]
  output_values = [value_id(v) if use_values else unknown
                   for v in output.values]
  graph = _Builder()
  residual = _add_embeddings(graph, params, layout.d_model, token_values)
  for layer in range(layout.num_layers):
    _add_attention(graph, params, layer, num_heads or 1, residual)
    _add_mlp(graph, params, layer, residual)
  _add_output(graph, output, output_values, residual)
  return graph.build()


def exceeded_limit(graph: WeightGraph, num_layers: int,
                   config: ml_collections.ConfigDict) -> Optional[str]:
  """Pass 3 without raising: None when the graph of a `num_layers`-layer
  model is within `config`'s limits, else the first limit it is over, named
  with the model's size: max_layers, the last bucket's nodes, edges and
  summary nodes, then max_index (token-embedding rows, positions, outputs).
  """
  if num_layers > config.max_layers:
    return f"{num_layers} layers exceed max_layers={config.max_layers}"
  max_nodes, max_edges, max_summary = config.buckets[-1]
  num_summary = len(summary_nodes(graph))
  if (graph.num_nodes > max_nodes or graph.num_edges > max_edges
      or num_summary > max_summary):
    return (f"weight graph has {graph.num_nodes} nodes, {graph.num_edges} "
            f"edges and {num_summary} summary nodes; the limits are max "
            f"nodes {max_nodes}, max edges {max_edges}, max summary nodes "
            f"{max_summary} (the last of graph.buckets)")
  count = lambda node_type: int(np.sum(graph.node_type
                                       == NODE_TYPE_IDS[node_type]))
  tokens, positions, outputs = map(count, ("TOKEN", "POSITION", "OUTPUT"))
  over = [what for n, what in (
      (tokens, f"{tokens} token-embedding rows (a vocab of {tokens - 2}, "
       "BOS and PAD)"),
      (positions, f"{positions} positions (max_seq_len {positions - 1} and "
       "BOS)"),
      (outputs, f"{outputs} output values")) if n > config.max_index]
  if over:
    return (f"the model has {' and '.join(over)}; token, position and "
            f"output ranks are embedded below max_index={config.max_index}, "
            f"so at most {config.max_index} of each")
  largest = int(graph.node_index.max(initial=0))
  if largest >= config.max_index:  # Only in a graph made by hand.
    return (f"weight graph has a node index of {largest}; indices are "
            f"embedded below max_index={config.max_index}")
  return None


def check_limits(graph: WeightGraph, num_layers: int,
                 config: ml_collections.ConfigDict) -> None:
  """Pass 3: LimitExceeded naming the first of `config`'s limits the graph
  of a `num_layers`-layer model is over (`exceeded_limit`)."""
  problem = exceeded_limit(graph, num_layers, config)
  if problem is not None:
    raise LimitExceeded(problem)


def limit_problem(params: Params, input_tokens: Sequence[Any],
                  output: OutputDecoding, num_heads: Optional[int],
                  config: ml_collections.ConfigDict, compiler_bos: str,
                  compiler_pad: str) -> Optional[str]:
  """Can the graph encoder under `config` read these weights? None if so;
  else the limit they are over and the model's size, the message
  `build_graph` raises as LimitExceeded. Same arguments as `build_graph`;
  ValueError, as there, for weights that are not tracr's (no limit can
  help those)."""
  layout = check_weights(params, input_tokens, output, num_heads)
  graph = construct_graph(params, layout, input_tokens, output, num_heads,
                          config.use_values, compiler_bos, compiler_pad)
  return exceeded_limit(graph, layout.num_layers, config)


def fits(params: Params, input_tokens: Sequence[Any], output: OutputDecoding,
         num_heads: Optional[int], config: ml_collections.ConfigDict,
         compiler_bos: str, compiler_pad: str) -> bool:
  """Whether `build_graph` accepts these weights under `config`'s limits
  (`limit_problem` is None)."""
  return limit_problem(params, input_tokens, output, num_heads, config,
                       compiler_bos, compiler_pad) is None


def build_graph(params: Params, input_tokens: Sequence[Any],
                output: OutputDecoding, num_heads: Optional[int],
                config: ml_collections.ConfigDict, compiler_bos: str,
                compiler_pad: str) -> WeightGraph:
  """The graph of a tracr model (see the module docstring): `check_weights`,
  `construct_graph`, `check_limits`.

  Args:
    params: a tracr params dict (checked; see `params.check_params`).
    input_tokens: token values in token-embedding row order.
    output: the output decoding: residual index (and, if categorical,
      value) of each output direction.
    num_heads: heads per attention layer; None treats each layer's attention
      as one head (tracr params do not store the count).
    config: `default_graph_config()` or a config's `graph` group.
    compiler_bos, compiler_pad: the BOS and PAD token names.

  Raises:
    LimitExceeded: naming the limit a valid model is over.
    ValueError: for params that are not tracr's, nonzero biases, or an output
      decoding that does not fit the residual stream.
  """
  layout = check_weights(params, input_tokens, output, num_heads)
  graph = construct_graph(params, layout, input_tokens, output, num_heads,
                          config.use_values, compiler_bos, compiler_pad)
  check_limits(graph, layout.num_layers, config)
  return graph


def check_buckets(buckets: Sequence[Sequence[int]]) -> None:
  """ValueError unless buckets are (nodes, edges, summary) triples, each
  count increasing from bucket to bucket."""
  triples = [tuple(b) for b in buckets]
  if not triples or any(len(t) != 3 for t in triples) or any(
      any(x >= y for x, y in zip(a, b)) for a, b in zip(triples, triples[1:])):
    raise ValueError("graph.buckets must be (nodes, edges, summary) triples, "
                     f"each increasing, got {triples}")


def summary_nodes(graph: WeightGraph) -> np.ndarray:
  """Ids of the nodes the decoder attends to: all but hidden units."""
  return np.flatnonzero(np.isin(graph.node_type, SUMMARY_TYPE_IDS))


@dataclasses.dataclass(frozen=True)
class GraphSet:
  """Many graphs as one: each field of every graph concatenated, so that a
  batch is cut out with a few array operations (`take_batch`).

  Attributes:
    union: the concatenated fields; edge ends stay ids within their own
      graph.
    node_start: int64 [G + 1], graph g's nodes are node_start[g] up to
      node_start[g + 1].
    edge_start: int64 [G + 1], likewise for edges.
  """

  union: WeightGraph
  node_start: np.ndarray
  edge_start: np.ndarray

  def __len__(self) -> int:
    return len(self.node_start) - 1


def concatenate_graphs(graphs: Sequence[WeightGraph]) -> GraphSet:
  """The graphs as one `GraphSet`, in order."""
  starts = lambda counts: np.concatenate([[0], np.cumsum(counts)]).astype(
      np.int64)
  return GraphSet(
      WeightGraph(**{name: np.concatenate(
          [np.zeros(0, dtype)] + [getattr(g, name) for g in graphs]
      ).astype(dtype) for name, dtype in _DTYPES.items()}),
      starts([g.num_nodes for g in graphs]),
      starts([g.num_edges for g in graphs]))


def _ranges(start_B: np.ndarray, count_B: np.ndarray) -> np.ndarray:
  """start[b], ..., start[b] + count[b] - 1 for every b, concatenated."""
  first_B = np.cumsum(count_B) - count_B
  return np.repeat(start_B - first_B, count_B) + np.arange(count_B.sum())


def take_batch(graphs: GraphSet, ids_B: np.ndarray,
               buckets: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
  """The disjoint union of graphs[ids], padded to the first bucket that fits.

  Returns node arrays [N] and edge arrays [E] (the `WeightGraph` fields, edge
  ends offset to the union's node ids) with `node_mask` [N] and `edge_mask`
  [E], and `summary_index` [B, S] (node ids of each example's summary nodes)
  with `summary_mask` [B, S]. Padding nodes have type PAD; padding edges are
  PAD edges from node 0 to node 0, masked. LimitExceeded if no bucket fits.
  """
  b = len(ids_B)
  node_count_B = graphs.node_start[ids_B + 1] - graphs.node_start[ids_B]
  edge_count_B = graphs.edge_start[ids_B + 1] - graphs.edge_start[ids_B]
  node_N = _ranges(graphs.node_start[ids_B], node_count_B)
  edge_E = _ranges(graphs.edge_start[ids_B], edge_count_B)
  node_type_N = graphs.union.node_type[node_N]
  graph_N = np.repeat(np.arange(b), node_count_B)
  summary_S = np.flatnonzero(np.isin(node_type_N, SUMMARY_TYPE_IDS))
  summary_count_B = np.bincount(graph_N[summary_S], minlength=b)
  total_nodes, total_edges = len(node_N), len(edge_E)
  widest = int(summary_count_B.max())
  for nodes, edges, summary in buckets:
    if (total_nodes <= nodes * b and total_edges <= edges * b
        and widest <= summary):
      break
  else:
    raise LimitExceeded(
        f"{b} graphs of {total_nodes} nodes, {total_edges} edges and up to "
        f"{widest} summary nodes fit no bucket of {list(buckets)}")

  first_node_B = np.cumsum(node_count_B) - node_count_B
  first_node_E = np.repeat(first_node_B, edge_count_B)
  out = {}
  for name, dtype in _DTYPES.items():
    is_node = name.startswith("node_")
    padded = np.zeros(nodes * b if is_node else edges * b, dtype)
    values = getattr(graphs.union, name)[node_N if is_node else edge_E]
    padded[:len(values)] = values
    if name in ("edge_source", "edge_target"):
      padded[:len(values)] += first_node_E
    out[name] = padded
  out["node_mask"] = np.arange(nodes * b) < total_nodes
  out["edge_mask"] = np.arange(edges * b) < total_edges
  first_summary_B = np.cumsum(summary_count_B) - summary_count_B
  summary_index_BxS = np.zeros((b, summary), np.int32)
  summary_index_BxS[graph_N[summary_S], np.arange(len(summary_S))
                    - first_summary_B[graph_N[summary_S]]] = summary_S
  out["summary_index"] = summary_index_BxS
  out["summary_mask"] = np.arange(summary)[None] < summary_count_B[:, None]
  return out


def batch_graphs(graphs: Sequence[WeightGraph],
                 buckets: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
  """The disjoint union of `graphs`, padded: `take_batch` of all of them."""
  return take_batch(concatenate_graphs(graphs), np.arange(len(graphs)),
                    buckets)
