"""Reads a program straight off compiled weights, where tracr's construction fixes it.

tracr builds every module from one recipe per RASP operation (see
`tracr/craft/chamber`): a categorical variable is a set of one-hot residual
directions, a numerical one a single direction; a Map or SequenceMap is an
MLP that turns its inputs' directions into its output's; an Aggregate is one
head whose query-key matrix is the selector's relation (`softmax_coldness`
where the predicate holds, half of it from the query's `one` to the key's
BOS) and whose value-output matrix copies its input's directions; a
SelectorWidth is a head that always attends to BOS plus an MLP that turns
1/(width+1) into the width. So the weights fix the dataflow and every
function's table, up to a relabeling of intermediate values, and this module
reads them:

1. the embeddings give `one`, BOS, the token and the index directions;
2. each later direction belongs to the module that first writes it; a head
   writes one variable, a layer's MLP several, split by the input variables
   they read and by which output directions light up together when the MLP
   is run on every combination of its inputs' values ("probing");
3. each variable's function is read by probing its module on one-hot
   inputs: an MLP's table, a head's relation (query-key logit above half the
   predicate's) and copied values, a SelectorWidth's width for each 1/(w+1);
4. values: tokens and indices from the embedding rows, the output's from the
   output decoding, an Aggregate's from what it copies, widths from the MLP;
   every other categorical variable is named `0, 1, ...` in the order its
   values first appear when its inputs' values are enumerated in order (the
   canonical naming rule; the weights cannot tell more).

Only the params, vocabulary, max_seq_len and output decoding are read, never
tracr's residual labels, so a permuted residual stream reads the same. The
result is a candidate, not a verdict: the decompiler verifies it like any
other. `ReadoutError` says where the weights leave tracr's recipes.
"""

import dataclasses
import itertools
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from compiled import saved, verify
from compiled import params as params_lib
from rasp_gen import convert
from rasp_gen.program import (INDICES, TOKENS, Encoding, Instruction, Linear,
                              Operator, Program, Table, canonicalize,
                              value_order)

_ZERO = 1e-6  # Weights and activations below this are absent.


class ReadoutError(ValueError):
  """The weights are not (or not only) tracr's recipes; the message says where."""


@dataclasses.dataclass
class _Variable:
  """A residual variable: its directions and, once known, their values."""

  name: str
  dims: tuple[int, ...]
  numerical: bool
  values: Optional[list] = None  # Per dim (categorical); None until named.
  # A numerical variable's values as tracr's value-set inference has them:
  # the points its MLP thresholds sit between.
  value_set: Optional[set] = None
  # An Aggregate's output holds its input's values: (input, dim -> input dim).
  copies: Optional[tuple[str, dict[int, int]]] = None


@dataclasses.dataclass(frozen=True)
class _Head:
  query_key_DxD: np.ndarray
  value_output_DxD: np.ndarray


class _Reader:
  """The state of one read: variables by name and by direction, instructions."""

  def __init__(self, model: saved.SavedModel):
    if model.num_heads is None:
      raise ReadoutError("the number of heads is unknown")
    self.model = model
    self.params = _with_one({m: {k: np.asarray(v, np.float64)
                                 for k, v in p.items()}
                             for m, p in model.params.items()})
    self.layout = params_lib.check_params(self.params)
    self.variables: dict[str, _Variable] = {}
    self.owner: dict[int, str] = {}
    self.instructions: list[Instruction] = []
    self.selectors: dict[tuple, str] = {}

  # -- variables ------------------------------------------------------------

  def add(self, dims: Sequence[int], numerical: bool,
          values: Optional[list] = None, name: Optional[str] = None,
          value_set: Optional[set] = None) -> str:
    name = name or f"x{len(self.variables)}"
    self.variables[name] = _Variable(name, tuple(dims), numerical, values,
                                     value_set=value_set)
    for dim in dims:
      if dim in self.owner:
        raise ReadoutError(f"direction {dim} is written twice")
      self.owner[dim] = name
    return name

  def owners(self, dims: Sequence[int]) -> list[str]:
    """The variables holding `dims`, in first-seen order; ReadoutError for
    a direction nothing wrote before."""
    names: list[str] = []
    for dim in dims:
      if dim not in self.written:
        # A value in tracr's value set that no input produces (e.g. a
        # SequenceMap's pair (x, y) of one variable with x != y): always 0.
        continue
      if dim not in self.owner:
        raise ReadoutError(f"direction {dim} is read before anything writes it")
      if self.owner[dim] not in names:
        names.append(self.owner[dim])
    return names

  def one_owner(self, dims: Sequence[int], what: str) -> str:
    names = self.owners(dims)
    if len(names) != 1:
      raise ReadoutError(f"{what} reads {len(names)} variables, not one")
    return names[0]

  # -- embeddings -----------------------------------------------------------

  def read_embeddings(self) -> None:
    model = self.model
    token_DxV = self.params["token_embed"]["embeddings"].T
    position_DxN = self.params["pos_embed"]["embeddings"].T
    tokens = model.input_tokens
    constant = np.all(np.abs(token_DxV - 1) < _ZERO, axis=1)
    if constant.sum() != 1:
      raise ReadoutError("no single direction is 1 for every token ('one')")
    self.one = int(np.argmax(constant))
    token_dims: list[int] = []
    for row, token in enumerate(tokens):
      dims = [d for d in np.flatnonzero(np.abs(token_DxV[:, row]) > _ZERO)
              if d != self.one]
      if len(dims) != 1:
        raise ReadoutError(f"token {token!r} writes {len(dims)} directions "
                           "besides 'one'; only categorical tokens are read")
      token_dims.append(int(dims[0]))
    self.bos = token_dims[tokens.index(model.compiler_bos)]
    vocab_rows = [r for r, t in enumerate(tokens)
                  if t not in (model.compiler_bos, model.compiler_pad)]
    self.add([token_dims[r] for r in vocab_rows], False,
             [tokens[r] for r in vocab_rows], TOKENS)
    # Positions 1.. (after BOS) are indices 0..; tracr writes none for BOS.
    index_dims, index_values = [], []
    for row in range(1, position_DxN.shape[1]):
      dims = np.flatnonzero(np.abs(position_DxN[:, row]) > _ZERO)
      if len(dims) == 1:
        index_dims.append(int(dims[0]))
        index_values.append(row - 1)
    if index_dims:
      self.add(index_dims, False, index_values, INDICES)
    self.layer_heads = [self.heads(layer)
                        for layer in range(self.layout.num_layers)]
    self.readers = self.value_readers()
    self.together = self.read_together()
    self.written, self.live_neurons = self.live_parts()

  def live_parts(self) -> tuple[set[int], dict[int, np.ndarray]]:
    """The directions something writes, and each layer's MLP neurons that
    can fire. tracr gives every value in a value set a direction, also
    values no input produces (a SequenceMap's pair (x, y) of one variable
    with x != y); those directions stay 0, and neurons that need one of
    them (a SequenceMap's pair neuron: 1 + 1 - 1 > 0) never fire."""
    embeddings = np.concatenate([self.params["token_embed"]["embeddings"],
                                 self.params["pos_embed"]["embeddings"]])
    written = np.abs(embeddings).max(0) > _ZERO
    live_neurons = {}
    for layer in range(self.layout.num_layers):
      written |= np.abs(self.params[params_lib.attn_key(
          layer, "linear")]["w"]).max(0) > _ZERO
      first_DxM, second_MxD = (self.params[params_lib.mlp_key(layer, n)]["w"]
                               for n in ("linear_1", "linear_2"))
      reads_dead = (np.abs(first_DxM[~written]) > _ZERO).any(0)
      best_case = (np.maximum(first_DxM[written], 0).sum(0)
                   - np.maximum(first_DxM[self.one], 0) + first_DxM[self.one])
      can_fire = ((np.abs(first_DxM) > _ZERO).any(0)
                  & (~reads_dead | (best_case > _ZERO)))
      live_neurons[layer] = np.flatnonzero(can_fire)
      written |= np.abs(second_MxD[can_fire]).max(0, initial=0) > _ZERO
    return set(np.flatnonzero(written).tolist()), live_neurons

  def read_together(self) -> dict[int, int]:
    """Per direction, a class of directions that must be one variable: a
    head reads one variable as query, one as key and one as value, the
    output decoding reads one, and a categorical Map's neuron (weights all
    +1, no bias) reads one. (Union-find; direction -> class root.)"""
    classes = _Classes(range(self.layout.d_model))
    join = lambda dims: classes.join(
        [int(d) for d in dims if d not in (self.one, self.bos)])
    for layer in range(self.layout.num_layers):
      for head in self.layer_heads[layer]:
        for matrix, axis in ((head.query_key_DxD, 1), (head.query_key_DxD, 0),
                             (head.value_output_DxD, 1)):
          join(np.flatnonzero(np.abs(matrix).max(axis) > _ZERO))
      first_DxM = self.params[params_lib.mlp_key(layer, "linear_1")]["w"]
      for column in first_DxM.T:
        read = np.flatnonzero(np.abs(column) > _ZERO)
        if (len(read) > 1 and self.one not in read
            and np.all(np.abs(column[read] - 1) < 1e-4)):
          join(read)
    join(self.model.output.dims)
    return {d: classes.root(d) for d in range(self.layout.d_model)}

  def value_readers(self) -> dict[int, frozenset]:
    """Per direction, the modules that read it as a value: heads' values,
    MLPs, the output. (Queries and keys may read only some of a variable's
    directions, so they do not count.)"""
    readers: dict[int, set] = {d: set() for d in range(self.layout.d_model)}
    for layer in range(self.layout.num_layers):
      for index, head in enumerate(self.layer_heads[layer]):
        for dim in np.flatnonzero(np.abs(head.value_output_DxD).max(1) > _ZERO):
          readers[int(dim)].add(("head", layer, index))
      first_DxM = self.params[params_lib.mlp_key(layer, "linear_1")]["w"]
      for dim in np.flatnonzero(np.abs(first_DxM).max(1) > _ZERO):
        readers[int(dim)].add(("mlp", layer))
    for dim in self.model.output.dims:
      readers[dim].add(("output",))
    return {d: frozenset(r) for d, r in readers.items()}

  # -- probing --------------------------------------------------------------

  def value_points(self, name: str) -> list:
    """Each value of a variable as (value key, residual contribution)."""
    variable = self.variables[name]
    width = self.layout.d_model
    if not variable.numerical:
      points = []
      for dim in variable.dims:
        vector = np.zeros(width)
        vector[dim] = 1.0
        points.append((dim, vector))
      return points
    (dim,) = variable.dims
    points = []
    for value in sorted(variable.value_set):
      vector = np.zeros(width)
      vector[dim] = value
      points.append((float(value), vector))
    return points

  def means(self, values: Iterable) -> set:
    """tracr's value set of a numerical mean of `values` (basis_inference)."""
    return {value / length for value in values
            for length in range(1, self.model.max_seq_len + 1)}

  def mlp(self, layer: int, residual_NxD: np.ndarray,
          neurons: np.ndarray) -> np.ndarray:
    first = self.params[params_lib.mlp_key(layer, "linear_1")]
    second = self.params[params_lib.mlp_key(layer, "linear_2")]
    hidden = np.maximum(residual_NxD @ first["w"][:, neurons]
                        + first["b"][neurons], 0.0)
    return hidden @ second["w"][neurons] + second["b"]

  def probe(self, layer: int, neurons: np.ndarray, inputs: Sequence[str]
            ) -> tuple[list[tuple], np.ndarray]:
    """Runs the MLP's `neurons` on every combination of `inputs`' values
    (with 'one' set): the combinations' keys and the outputs [N, D]."""
    grids = [self.value_points(name) for name in inputs]
    keys, rows = [], []
    for combination in itertools.product(*grids):
      residual = np.zeros(self.layout.d_model)
      residual[self.one] = 1.0
      for _, vector in combination:
        residual = residual + vector
      keys.append(tuple(k for k, _ in combination))
      rows.append(residual)
    return keys, self.mlp(layer, np.array(rows), neurons)

  # -- attention ------------------------------------------------------------

  def heads(self, layer: int) -> list[_Head]:
    weight = lambda name: self.params[params_lib.attn_key(layer, name)]["w"]
    num_heads = self.model.num_heads
    key_size = weight("query").shape[1] // num_heads
    heads = []
    for h in range(num_heads):
      part = slice(h * key_size, (h + 1) * key_size)
      query_key = weight("query")[:, part] @ weight("key")[:, part].T
      value_output = weight("value")[:, part] @ weight("linear")[part]
      if np.abs(value_output).max(initial=0) > _ZERO:
        heads.append(_Head(query_key / np.sqrt(key_size), value_output))
    return heads

  def selector(self, head: _Head, always_attends_to_bos: bool) -> str:
    """The Select a head's query-key matrix encodes (shared when equal)."""
    query_key = head.query_key_DxD
    bos_logit = query_key[self.one, self.bos]
    if bos_logit <= _ZERO:
      raise ReadoutError("a head does not attend to BOS by default")
    # tracr: the predicate's logit is the softmax coldness c; BOS gets c/2
    # (Aggregate) or c (SelectorWidth, which always attends to BOS).
    coldness = bos_logit if always_attends_to_bos else 2 * bos_logit
    rows = [d for d in np.flatnonzero(np.abs(query_key).max(1) > _ZERO)
            if d != self.one]
    columns = [d for d in np.flatnonzero(np.abs(query_key).max(0) > _ZERO)
               if d != self.bos]
    if rows and columns:
      queries = self.one_owner(rows, "a selector's query")
      keys = self.one_owner(columns, "a selector's key")
    else:  # Never true: any variables do.
      queries = keys = INDICES if INDICES in self.variables else TOKENS
    relation = {}
    for key_dim in self.variables[keys].dims:
      for query_dim in self.variables[queries].dims:
        relation[(key_dim, query_dim)] = bool(
            query_key[query_dim, key_dim] > coldness / 2)
    signature = (keys, queries, tuple(sorted(relation.items())))
    if signature not in self.selectors:
      name = f"s{len(self.selectors)}"
      self.selectors[signature] = name
      self.instructions.append(Instruction(
          Operator.SELECT, _Pending(relation), (keys, queries), name))
    return self.selectors[signature]

  def read_attention(self, layer: int) -> dict[int, str]:
    """Adds each head's Aggregate; returns SelectorWidth heads' hidden
    direction -> their Select."""
    widths = {}
    for head in self.layer_heads[layer]:
      value_output = head.value_output_DxD
      sources = [int(d) for d in np.flatnonzero(
          np.abs(value_output).max(1) > _ZERO) if d != self.bos]
      targets = [int(d) for d in np.flatnonzero(
          np.abs(value_output).max(0) > _ZERO)]
      if not sources:  # Copies only BOS: a SelectorWidth's attention.
        if len(targets) != 1:
          raise ReadoutError(f"layer {layer}: a head copying only BOS writes "
                             f"{len(targets)} directions")
        widths[targets[0]] = self.selector(head, always_attends_to_bos=True)
        continue
      selector = self.selector(head, always_attends_to_bos=False)
      source = self.one_owner(sources, f"layer {layer}: a head's value")
      variable = self.variables[source]
      if not variable.numerical and len(targets) == 1 and len(
          variable.dims) > 1:
        # A numerical mean of a categorical variable: each value direction
        # carries its value as the weight (tracr's lib: means of booleans).
        weights = [_number(value_output[d, targets[0]]) for d in variable.dims]
        self.set_values(source, weights)
        output = self.add(targets, True, value_set=self.means(weights))
        variable = self.variables[output]
      elif variable.numerical:
        if len(targets) != 1 or abs(value_output[variable.dims[0],
                                                 targets[0]] - 1) > 1e-4:
          raise ReadoutError(f"layer {layer}: a numerical Aggregate that "
                             "does not copy its input")
        output = self.add(targets, True,
                          value_set=self.means(variable.value_set))
      else:
        copied = {}
        for dim in variable.dims:
          row = value_output[dim]
          target = int(np.argmax(row))
          if abs(row[target] - 1) > 1e-4 or np.sum(np.abs(row) > _ZERO) != 1:
            raise ReadoutError(f"layer {layer}: a categorical Aggregate that "
                               "does not copy its input")
          copied[target] = dim
        output = self.add(sorted(copied), False)
        self.variables[output].copies = (source, copied)
      self.instructions.append(Instruction(
          Operator.AGGREGATE, None, (selector, source), output,
          Encoding.NUMERICAL if variable.numerical else Encoding.CATEGORICAL))
    return widths

  # -- MLPs -----------------------------------------------------------------

  def read_mlp(self, layer: int, widths: dict[int, str]) -> None:
    first_DxM = self.params[params_lib.mlp_key(layer, "linear_1")]["w"]
    second_MxD = self.params[params_lib.mlp_key(layer, "linear_2")]["w"]
    reads = np.abs(first_DxM) > _ZERO
    writes = np.abs(second_MxD) > _ZERO
    live = self.live_neurons[layer][writes[self.live_neurons[layer]].any(1)]
    # tracr's SelectorWidth scrubs BOS with a neuron that reads only BOS.
    cleaners = [n for n in live if set(np.flatnonzero(reads[:, n])) == {self.bos}]
    live = np.array([n for n in live if n not in cleaners], int)
    # A discretising MLP's first neuron reads only 'one' (a bias); it joins
    # the neurons that write where it writes.
    biases = [n for n in live if set(np.flatnonzero(reads[:, n])) == {self.one}]
    live = np.array([n for n in live if n not in biases], int)
    with_biases = lambda neurons: np.array(list(neurons) + [
        b for b in biases if (writes[b] & writes[neurons].any(0)).any()], int)
    for hidden_dim, selector in widths.items():
      neurons = live[reads[hidden_dim, live]]
      live = np.setdiff1d(live, neurons)
      self.read_width(layer, hidden_dim, selector, with_biases(neurons))
    # Group the rest into modules: neurons that write a common direction
    # (a linear SequenceMap's neurons each read one input), then modules
    # reading the same variables (a categorical Map's neurons each write one
    # output value). A module reads exactly its function's inputs.
    modules = _components(live, writes)
    by_inputs: dict[tuple[str, ...], list[int]] = {}
    for neurons in modules:
      dims = [d for d in np.flatnonzero(reads[:, neurons].any(1))
              if d != self.one]
      inputs = tuple(sorted(self.owners(dims)))
      by_inputs.setdefault(inputs, []).extend(neurons)
    for inputs, neurons in by_inputs.items():
      if not 1 <= len(inputs) <= 2:
        raise ReadoutError(f"layer {layer}: an MLP reads {len(inputs)} "
                           "variables")
      neurons = with_biases(neurons)
      dims = [int(d) for d in np.flatnonzero(writes[neurons].any(0))]
      self.read_functions(layer, neurons, inputs, dims)

  def read_width(self, layer: int, hidden_dim: int, selector: str,
                 neurons: np.ndarray) -> None:
    max_seq_len = self.model.max_seq_len
    widths = list(range(max_seq_len + 1))
    residual = np.zeros((len(widths), self.layout.d_model))
    residual[:, self.one] = 1.0
    residual[:, hidden_dim] = [1 / (w + 1) for w in widths]
    out_WxD = self.mlp(layer, residual, neurons)
    dims = [int(d) for d in np.flatnonzero(np.abs(out_WxD).max(0) > _ZERO)
            if d != hidden_dim]
    if len(dims) == 1:  # Numerical: the width itself.
      output = self.add(dims, True, value_set=set(widths))
    else:
      values = _width_values(out_WxD[:, dims] > 0.5)
      if values is None:
        raise ReadoutError(f"layer {layer}: a SelectorWidth's directions do "
                           "not each stand for one width")
      output = self.add(dims, False, values)
    self.instructions.append(Instruction(
        Operator.SELECTOR_WIDTH, None, (selector,), output,
        Encoding.NUMERICAL if len(dims) == 1 else Encoding.CATEGORICAL))

  def read_functions(self, layer: int, neurons: np.ndarray,
                     inputs: tuple[str, ...], dims: list[int]) -> None:
    """Splits the directions some neurons write into variables and reads
    each one's table."""
    numerical_inputs = [self.variables[n].numerical for n in inputs]
    if len(inputs) == 2 and any(numerical_inputs):
      # Only linear SequenceMaps mix numerical inputs, so a one-direction
      # variable beside a numerical one is a numerical Map that is always 1.
      for name in inputs:
        self.as_numerical(name)
      numerical_inputs = [True, True]
    keys, out_NxD = self.probe(layer, neurons, inputs)
    out_NxO = out_NxD[:, dims]
    # Categorical directions are 0 or 1, but tracr's numerical-to-categorical
    # MLP ramps over 1/100 around each threshold, so values closer than that
    # to one read in between: a direction counts as on above 0.5.
    unit = np.all((out_NxO > -1e-3) & (out_NxO < 1 + 1e-3), axis=0)
    numerical = [[d] for d, u in zip(dims, unit) if not u]
    categorical = _one_hot_groups([d for d, u in zip(dims, unit) if u],
                                  out_NxO[:, unit] > 0.5, self.readers,
                                  self.together)
    for group in numerical + categorical:
      columns = [dims.index(d) for d in group]
      values_N = out_NxO[:, columns]
      # A lone direction that is always on is a one-value categorical
      # variable (a direction sometimes off is a numerical 0/1 one).
      one_hot = group in categorical and (
          len(group) > 1 or np.all(values_N > 0.5))
      if all(numerical_inputs) and len(inputs) == 2:
        self.add_linear(inputs, keys, values_N[:, 0], group)
      elif one_hot:
        table = {key: group[int(np.argmax(row))] for key, row in
                 zip(keys, values_N)}
        output = self.add(group, False)
        self.add_map(inputs, _Pending(table), output, Encoding.CATEGORICAL)
      else:
        table = {key: _number(row[0]) for key, row in zip(keys, values_N)}
        output = self.add(group, True, value_set=set(table.values()))
        self.add_map(inputs, _Pending(table), output, Encoding.NUMERICAL)

  def as_numerical(self, name: str) -> None:
    """Rereads a one-direction categorical Map output as a numerical Map
    that is always 1 (the weights are the same)."""
    variable = self.variables[name]
    if variable.numerical:
      return
    (index,) = [i for i, instruction in enumerate(self.instructions)
                if instruction.output == name] or [None]
    instruction = None if index is None else self.instructions[index]
    if (len(variable.dims) != 1 or instruction is None
        or not isinstance(instruction.function, _Pending)):
      raise ReadoutError("a linear SequenceMap reads a categorical variable")
    variable.numerical, variable.value_set = True, {1}
    self.instructions[index] = dataclasses.replace(
        instruction, encoding=Encoding.NUMERICAL,
        function=_Pending({key: 1 for key in instruction.function.table}))

  def add_map(self, inputs: tuple[str, ...], table: "_Pending", output: str,
              encoding: Encoding) -> None:
    operator = Operator.MAP if len(inputs) == 1 else Operator.SEQUENCE_MAP
    self.instructions.append(Instruction(operator, table, inputs, output,
                                         encoding))

  def add_linear(self, inputs: tuple[str, ...], keys: list[tuple],
                 values_N: np.ndarray, group: list[int]) -> None:
    # y = a * x1 + b * x2: solve on the probed grid, then check every point.
    design_Nx2 = np.array(keys, np.float64)
    factors, *_ = np.linalg.lstsq(design_Nx2, values_N, rcond=None)
    if np.abs(design_Nx2 @ factors - values_N).max(initial=0) > 1e-4:
      raise ReadoutError(f"a SequenceMap of numerical {inputs} is not linear")
    output = self.add(group, True, value_set={
        _number(v) for v in design_Nx2 @ factors})
    self.instructions.append(Instruction(
        Operator.SEQUENCE_MAP, Linear(*(_number(f) for f in factors)), inputs,
        output, Encoding.NUMERICAL))

  # -- values ---------------------------------------------------------------

  def name_values(self) -> None:
    """Fixes the output's values from the output decoding (module doc);
    the others are named when first asked for (`value_of`)."""
    output = self.model.output
    name = self.one_owner(list(output.dims), "the output decoding")
    variable = self.variables[name]
    if variable.numerical != output.numerical or (
        not output.numerical and set(variable.dims) != set(output.dims)):
      raise ReadoutError("the output decoding is not one variable")
    self.output_name = name
    if not output.numerical:
      by_dim = dict(zip(output.dims, output.values))
      self.set_values(name, [by_dim[d] for d in variable.dims])

  def set_values(self, name: str, values: list) -> None:
    """Sets a variable's values and those of what it copies or copies it."""
    variable = self.variables[name]
    if variable.values is not None:
      if variable.values != values:
        raise ReadoutError(f"conflicting values for a variable: "
                           f"{variable.values} and {values}")
      return
    variable.values = values
    by_dim = dict(zip(variable.dims, values))
    if variable.copies:
      source, copied = variable.copies
      source_dims = self.variables[source].dims
      if set(copied.values()) == set(source_dims):
        by_source = {s: by_dim[t] for t, s in copied.items()}
        self.set_values(source, [by_source[s] for s in source_dims])
    for other in list(self.variables.values()):
      if other.copies and other.copies[0] == name:
        self.set_values(other.name, [values[variable.dims.index(
            other.copies[1][t])] for t in other.dims])

  def value_of(self, name: str, key: Any) -> Any:
    """The value a variable's direction (or numerical key) stands for."""
    variable = self.variables[name]
    if variable.numerical:
      return _number(key)
    if variable.values is None:
      self.name_canonically(name)
    return variable.values[variable.dims.index(key)]

  def name_canonically(self, name: str) -> None:
    """`0, 1, ...` in the order the values first appear over the inputs'
    values in order; an Aggregate's output takes its input's names."""
    variable = self.variables[name]
    if variable.copies:
      if self.variables[variable.copies[0]].values is None:
        self.name_canonically(variable.copies[0])
      if variable.values is None:  # It copies only some of its input.
        source = self.variables[variable.copies[0]]
        self.set_values(name, [source.values[source.dims.index(
            variable.copies[1][t])] for t in variable.dims])
      return
    (instruction,) = [i for i in self.instructions if i.output == name]
    table = instruction.function.table
    ordered = sorted(table, key=lambda key: tuple(
        value_order(self.value_of(n, k))
        for n, k in zip(instruction.args, key)))
    order: list[int] = []
    for key in ordered:
      if table[key] not in order:
        order.append(table[key])
    order += [d for d in variable.dims if d not in order]
    self.set_values(name, [order.index(d) for d in variable.dims])

  def program(self) -> Program:
    self.name_values()
    instructions = []
    for instruction in self.instructions:
      function = instruction.function
      if isinstance(function, _Pending):
        output = self.variables.get(instruction.output)
        entries = []
        for key, value in function.table.items():
          args = tuple(self.value_of(n, k) for n, k in
                       zip(instruction.args, key))
          if instruction.operator == Operator.SELECT or output.numerical:
            entries.append((args, value))
          else:
            entries.append((args, self.value_of(instruction.output, value)))
        function = Table(tuple(entries))
        numerical_input = any(self.variables[n].numerical
                              for n in instruction.args
                              if n in self.variables)
        if not ((output is not None and output.numerical)
                or numerical_input):
          function = convert.readable(instruction.operator, function)
      instructions.append(dataclasses.replace(instruction, function=function))
    return canonicalize(Program(_used(instructions, self.output_name)))


@dataclasses.dataclass(frozen=True)
class _Pending:
  """A table over directions, before the directions have values."""

  table: dict


def _with_one(params: dict) -> dict:
  """The params with a direction that is 1 for every token. tracr adds
  'one' only when a module needs it; where none does, an extra direction
  that nothing reads lets every probe set it all the same."""
  token_VxD = params["token_embed"]["embeddings"]
  if np.all(np.abs(token_VxD - 1) < _ZERO, axis=0).any():
    return params
  widened = {}
  for module, leaves in params.items():
    widened[module] = {}
    for name, array in leaves.items():
      if module == "token_embed":
        array = np.concatenate([array, np.ones((len(array), 1))], axis=1)
      elif module == "pos_embed" or module.endswith(("/linear", "linear_2")):
        array = np.concatenate([array, np.zeros(array.shape[:-1] + (1,))],
                               axis=-1)
      elif name == "w":  # query, key, value, linear_1: rows are directions.
        array = np.concatenate([array, np.zeros((1, array.shape[1]))])
      widened[module][name] = array
  return widened


def _number(value: float) -> Any:
  rounded = round(float(value), 6)
  return int(rounded) if rounded == int(rounded) else rounded


def _width_values(on_WxO: np.ndarray) -> Optional[list[int]]:
  """Each direction's width: the least width that turns it on. tracr's MLP
  cannot tell max_seq_len from max_seq_len - 1 past length ~10 (its
  rounding; a known tracr limit), so one direction may be on for two widths
  and another for none; the latter takes the one width left over."""
  values = [int(np.argmax(column)) if column.any() else None
            for column in on_WxO.T]
  left = sorted(set(range(len(on_WxO))) - set(values))
  if values.count(None) > 1 or len(set(values) - {None}) != len(
      [v for v in values if v is not None]):
    return None
  return [left[0] if v is None else v for v in values]


def _one_hot_groups(dims: list[int], on_NxO: np.ndarray,
                    readers: dict[int, frozenset],
                    together: dict[int, int]) -> list[list[int]]:
  """Splits directions into variables: each combination of inputs (row)
  turns on exactly one direction of a categorical variable, directions read
  together (`read_together`) are one variable, and every module that reads
  a variable's value reads all of its directions. A direction left alone
  that is sometimes off is a numerical 0/1 variable. Depth-first search
  over the classes, joining before opening a new group; ReadoutError when
  the search runs too long."""
  if not dims:
    return []
  classes: dict[int, list[int]] = {}
  for column, dim in enumerate(dims):
    classes.setdefault(together[dim], []).append(column)
  blocks = sorted(classes.values(), key=lambda c: on_NxO[:, c].sum(1).tobytes())
  patterns = [on_NxO[:, block].sum(1) for block in blocks]
  budget = [20_000]

  def search(index: int, groups: list[list[int]], sums: list[np.ndarray]
             ) -> Optional[list[list[int]]]:
    budget[0] -= 1
    if budget[0] < 0:
      raise ReadoutError("an MLP's outputs split into variables in too many "
                         "ways to search")
    if index == len(blocks):
      ok = all(np.all(total == 1) for group, total in zip(groups, sums)
               if len(group) > 1)
      return groups if ok else None
    pattern, first = patterns[index], dims[blocks[index][0]]
    if np.any(pattern > 1):
      return None  # Read together, yet on together: not one variable.
    for g, (group, total) in enumerate(zip(groups, sums)):
      if np.any(total + pattern > 1) or not _nested(
          readers[first], readers[dims[group[0]]]):
        continue
      found = search(index + 1, groups[:g] + [group + blocks[index]]
                     + groups[g + 1:], sums[:g] + [total + pattern]
                     + sums[g + 1:])
      if found is not None:
        return found
    return search(index + 1, groups + [list(blocks[index])],
                  sums + [pattern])

  found = search(0, [], [])
  if found is None:
    raise ReadoutError("an MLP's outputs do not split into one-hot variables")
  return [[dims[c] for c in group] for group in found]


def _nested(first: frozenset, second: frozenset) -> bool:
  # A numerical Aggregate of a categorical variable reads only the directions
  # of nonzero values, so one variable's readers may nest.
  return first <= second or second <= first


class _Classes:
  """Union-find: which items have been joined into one class."""

  def __init__(self, items: Iterable[int]):
    self.parent = {int(i): int(i) for i in items}

  def root(self, item: int) -> int:
    while self.parent[item] != item:
      self.parent[item] = self.parent[self.parent[item]]
      item = self.parent[item]
    return item

  def join(self, items: Sequence[int]) -> None:
    for item in items[1:]:
      self.parent[self.root(item)] = self.root(items[0])

  def groups(self) -> list[list[int]]:
    by_root: dict[int, list[int]] = {}
    for item in self.parent:
      by_root.setdefault(self.root(item), []).append(item)
    return list(by_root.values())


def _components(neurons: np.ndarray, writes_MxD: np.ndarray) -> list[list[int]]:
  """Neurons joined by the directions they write."""
  classes = _Classes(neurons)
  for dim in np.flatnonzero(writes_MxD[neurons].any(0)):
    classes.join([int(n) for n in neurons if writes_MxD[n, dim]])
  return classes.groups()


def _used(instructions: list[Instruction], output: str) -> tuple:
  needed, kept = {output}, []
  for instruction in reversed(instructions):
    if instruction.output in needed:
      kept.append(instruction)
      needed.update(instruction.args)
  return tuple(reversed(kept))


def read_program(model: saved.SavedModel) -> Program:
  """The program tracr's recipes say `model`'s weights compute.

  Raises ReadoutError where the weights are not tracr's.
  """
  reader = _Reader(model)
  reader.read_embeddings()
  for layer in range(reader.layout.num_layers):
    widths = reader.read_attention(layer)
    reader.read_mlp(layer, widths)
  return reader.program()


def read_and_verify(reference: verify.Reference, stop_early: bool = True
                    ) -> tuple[Program, verify.Verification]:
  """The program read off `reference`'s weights, checked against them on
  its inputs (`compiled.verify`); ValueError (ReadoutError) as
  `read_program`."""
  program = read_program(reference.model)
  return program, verify.verify_against(reference, convert.to_rasp(program),
                                        stop_early=stop_early)
