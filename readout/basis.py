"""How the read-out sees the weights: in tracr's residual basis, recovered.

tracr gives every categorical value its own residual direction and every
numerical variable one, each written by exactly one module. Any invertible
map A of the residual stream (a rotation, a permutation, a general basis
change) leaves the function unchanged and makes every matrix dense, but the
directions survive as vectors: the "atoms" e_d·A. This pass finds them in
the order tracr's modules write them, and rewrites the model in their basis,
where the later passes read as on tracr's own weights:

1. embeddings: each token row is one atom (tracr: `one` + the token's
   direction); each position row that writes anything is one;
2. a head writes its value-output image of the atoms it reads: one new atom
   per atom copied (a categorical Aggregate, a SelectorWidth's BOS), or one
   direction for a numerical mean (unit norm: the scale of an intermediate
   numerical variable is itself a symmetry);
3. an MLP writes into the span of its neurons' output rows; that span splits
   into independent parts (the connected components of the rows' linear
   matroid), and the distinct vectors each part takes on the check inputs'
   positions are its atoms (one per categorical value; one direction for a
   numerical output);
4. the model in the atoms' basis: readers are atoms · W, writers solve
   X · atoms = W, tracr's `one` is split from the token rows (a query and an
   MLP neuron read BOS never, so `one` is what they read from BOS); each MLP
   neuron rescaled so its largest output weight is 1 (neuron scaling is a
   symmetry); entries at the noise level dropped; the unembedding becomes
   tracr's output directions again.

Noisy weights (an exact rewrite that keeps the noise is tried first; the
read-out takes the first view it reads) are seen with what tracr's structure
fixes: each module reads only atoms written before it and writes only its
own; an MLP's values are taken on the probes where the check inputs blur
them, in the span of its output rows; a categorical output's values are
what the unembedding reads one each from.

A model already in tracr's basis (no `unembed` matrix) is returned as it is.
"""

import dataclasses
import functools
from typing import Iterator, Optional, Sequence

import numpy as np

from compiled import inputs as inputs_lib
from compiled import params as params_lib
from compiled import compare, forward, saved
from compiled.compiler import OutputDecoding
from readout.errors import ReadoutError

Params = dict[str, dict[str, np.ndarray]]

_NOISE_FACTOR = 8.0  # Entries under this times a matrix's median are noise.
_NOISE_RELATIVE = 5e-2  # Noisy weights: a head's products under this times
# the largest are noise (tracr writes them at one or two magnitudes: a
# selector's, BOS's half); the product of two noisy factors has noise above
# the median.
_NEURON_NOISE = 0.2  # Noisy weights: a neuron's reads under this times its
# largest are noise (tracr's neurons read every input at one magnitude; the
# noise is the whole matrix's, and slopes of 100 make it large beside a read
# of 1).
_ROUNDING = 1e-8  # Exact weights: entries below this times the largest are 0.
_NUM_CHECK_INPUTS = 2000
_NUM_SAME_OUTPUTS = 300  # Check inputs an exact rewrite must reproduce.
_EXACT_TOLERANCE = 1e-4  # Exact weights stored in float32 under a map of
# condition number 100 carry rounding of ~1e-5 of a weight.
_MAJORITY = 0.9  # Share of an MLP's outputs its values' clusters must hold.
_NOISY_TOLERANCE = 3e-2
_OUTPUT_SHARE = 0.1  # Of the largest read, an output atom's has at least this.
_COPY_GAP = 4.0  # A head's copied atoms' images are this much larger than
# what noise lifts.
_NOISY_OUTPUT_TOLERANCE = 0.1  # Unembedding entries off tracr's, at most.
_MAX_OUTPUT_MIXING = 1 / _NOISY_TOLERANCE  # Condition number of the reads
# of an output's atoms that a mixture of its values can have.


@dataclasses.dataclass(frozen=True)
class Atoms:
  """The residual directions found so far, as rows in the model's basis.

  Attributes:
    vectors_KxD: one row per direction.
    tokens: the number of leading rows that are token-embedding rows (in
      row order); the rest are positions' and modules' directions.
    positions: the position-embedding rows that are atoms (those next).
    modules: per atom after the embeddings', the module writing it: 2l + 1
      layer l's attention, 2l + 2 its MLP (embeddings: 0).
    copied_from: per atom after the embeddings', the atom a head copied it
      from (its image under the head's value-output map), else -1.
  """

  vectors_KxD: np.ndarray
  tokens: int
  positions: tuple[int, ...] = ()
  modules: tuple[int, ...] = ()
  copied_from: tuple[int, ...] = ()

  def extended(self, new_NxD: np.ndarray, module: int,
               copied_from: Optional[Sequence[int]] = None) -> "Atoms":
    copied_from = (-1,) * len(new_NxD) if copied_from is None else tuple(
        copied_from)
    return Atoms(np.concatenate([self.vectors_KxD, new_NxD]), self.tokens,
                 self.positions, self.modules + (module,) * len(new_NxD),
                 self.copied_from + copied_from)

  def writers_K(self) -> np.ndarray:
    """The module writing each atom (0: the embeddings)."""
    embedded = len(self.vectors_KxD) - len(self.modules)
    return np.array([0] * embedded + list(self.modules), int)

  def sources_K(self) -> np.ndarray:
    """The atom each atom was copied from (-1: none)."""
    embedded = len(self.vectors_KxD) - len(self.copied_from)
    return np.array([-1] * embedded + list(self.copied_from), int)


def _float64(model: saved.SavedModel) -> Params:
  return {module: {name: np.asarray(value, np.float64)
                   for name, value in leaves.items()}
          for module, leaves in model.params.items()}




def _rank(matrix_NxD: np.ndarray, tolerance: float) -> int:
  if not matrix_NxD.size:
    return 0
  singular = np.linalg.svd(matrix_NxD, compute_uv=False)
  return int(np.sum(singular > tolerance * max(singular[0], 1e-30)))


def embedding_atoms(params: Params, tolerance: float) -> Atoms:
  """Token rows, then the position rows that write anything (more than
  `tolerance` times the largest token row: noise is no position)."""
  token_VxD = params["token_embed"]["embeddings"]
  position_NxD = params["pos_embed"]["embeddings"]
  scale = np.linalg.norm(token_VxD, axis=1).max()
  writes = np.flatnonzero(np.linalg.norm(position_NxD, axis=1)
                          > tolerance * max(scale, 1e-30))
  return Atoms(np.concatenate([token_VxD, position_NxD[writes]]),
               len(token_VxD), tuple(int(row) for row in writes))


def _outside_span(basis_KxD: np.ndarray):
  """The function taking rows to their part outside the span of
  `basis_KxD`'s rows (the orthogonal projection's residual; one
  factorization for every call)."""
  if not len(basis_KxD):
    return lambda rows_NxD: rows_NxD
  _, singular, right_KxD = np.linalg.svd(basis_KxD, full_matrices=False)
  span_KxD = right_KxD[singular > 1e-12 * singular[0]]
  return lambda rows_NxD: rows_NxD - (rows_NxD @ span_KxD.T) @ span_KxD


def head_atoms(value_output_DxD: np.ndarray, atoms: Atoms,
               tolerance: float) -> tuple[np.ndarray, np.ndarray]:
  """The atoms one head writes (rows), from the atoms it copies, and the
  atom each is a copy of (-1: a numerical mean's direction)."""
  images_KxD = atoms.vectors_KxD @ value_output_DxD
  norms = np.linalg.norm(images_KxD, axis=1)
  if norms.max(initial=0) <= tolerance:
    return np.zeros((0, images_KxD.shape[1])), np.zeros(0, int)
  sources = np.flatnonzero(norms > tolerance * norms.max())
  images = images_KxD[sources]
  rank = _rank(images, tolerance)
  if 1 < rank < len(images):
    # Noise may lift an atom not copied (an MLP's noise along a copied
    # atom): the copied are those above the largest gap in image size.
    sizes = np.sort(norms[norms > tolerance * norms.max()])[::-1]
    gaps = sizes[:-1] / sizes[1:]
    large = np.flatnonzero(norms >= sizes[np.argmax(gaps)])
    if gaps.max() >= _COPY_GAP and _rank(images_KxD[large],
                                         tolerance) == len(large):
      sources = large
      images, rank = images_KxD[large], len(large)
  if rank == len(images):  # A copy: each atom read becomes its own.
    return images, sources
  if rank == 1:  # A numerical mean: one direction.
    largest = images[np.argmax(np.linalg.norm(images, axis=1))]
    return (largest / np.linalg.norm(largest))[None], np.array([-1])
  raise ReadoutError(f"a head writes {len(images)} directions spanning "
                     f"{rank}: neither a copy nor a numerical mean")


def matroid_components(rows_NxD: np.ndarray,
                       tolerance: float) -> list[list[int]]:
  """Rows joined when some linear dependence holds them together: the
  connected components of the rows' linear matroid (each spans its own
  part of a direct sum)."""
  count = len(rows_NxD)
  parent = list(range(count))

  def root(item: int) -> int:
    while parent[item] != item:
      parent[item] = parent[parent[item]]
      item = parent[item]
    return item

  basis: list[int] = []
  for row in range(count):
    if basis:
      chosen = rows_NxD[basis]
      coefficients, *_ = np.linalg.lstsq(chosen.T, rows_NxD[row], rcond=None)
      residual = rows_NxD[row] - coefficients @ chosen
      scale = max(np.linalg.norm(rows_NxD[row]), 1e-30)
      if np.linalg.norm(residual) <= tolerance * scale:
        for member, weight in zip(basis, coefficients):
          if abs(weight) > tolerance:
            parent[root(member)] = root(row)
        continue
    basis.append(row)
  groups: dict[int, list[int]] = {}
  for row in range(count):
    groups.setdefault(root(row), []).append(row)
  return list(groups.values())


def _distinct(vectors_NxD: np.ndarray, tolerance: float,
              keys_NxE: Optional[np.ndarray] = None) -> np.ndarray:
  """The distinct rows, as cluster means, most members first, and each
  cluster's size: rows whose keys (default: the rows) are within
  `tolerance` of the largest key are one; rows with a key that small are
  dropped."""
  keys_NxE = vectors_NxD if keys_NxE is None else keys_NxE
  scale = np.linalg.norm(keys_NxE, axis=1).max(initial=0)
  # Keys on one point of a grid much finer than `tolerance` join the same
  # cluster: cluster each such point once, in the order the keys first
  # appear (rows repeat a lot, up to rounding in another basis). The
  # clustering below still compares the keys themselves.
  step = max(tolerance * scale / (2 * np.sqrt(keys_NxE.shape[1])), 1e-300)
  grid_NxE = np.ascontiguousarray(np.round(keys_NxE / step)) + 0.0  # No -0.
  as_bytes = grid_NxE.view(np.dtype((np.void, 8 * grid_NxE.shape[1])))
  _, first_U, inverse_N = np.unique(as_bytes.reshape(-1), return_index=True,
                                    return_inverse=True)
  unique_UxE = keys_NxE[first_U]
  cluster_U = np.full(len(unique_UxE), -1)
  centres_UxE = np.zeros_like(unique_UxE)
  count = 0
  for index in np.argsort(first_U):
    key = unique_UxE[index]
    if np.linalg.norm(key) <= tolerance * scale:
      continue
    near = np.flatnonzero(np.linalg.norm(centres_UxE[:count] - key, axis=1)
                          <= tolerance * scale)
    if near.size:
      cluster_U[index] = near[0]
    else:
      centres_UxE[count], cluster_U[index] = key, count
      count += 1
  cluster_N = cluster_U[inverse_N.reshape(-1)]
  sizes = np.bincount(cluster_N[cluster_N >= 0], minlength=count)
  order = np.argsort(-sizes, kind="stable")
  return (np.array([vectors_NxD[cluster_N == i].mean(axis=0) for i in order]
                   ).reshape(-1, vectors_NxD.shape[1]),
          sizes[order].astype(int))


def _with_constant_parts_joined(components: list[list[int]],
                                pieces_of, reads_KxM: np.ndarray,
                                always_on_M: np.ndarray,
                                tolerance: float) -> list[list[int]]:
  """`components` with each one that writes the same nonzero vector at every
  checked position joined to the one other component whose neurons read the
  same atoms and that has no always-on neuron of its own (or, for one
  reading none, to the only other component): tracr's
  numerical-to-categorical MLP writes its smallest value's direction from
  one always-on neuron and each step up as (next value - previous value),
  so only their sum is the variable; two such Maps of one input in one
  layer each have their own."""
  reads = lambda component: frozenset(np.flatnonzero(
      np.abs(reads_KxM[:, component]).max(1)
      > tolerance * max(np.abs(reads_KxM[:, component]).max(), 1e-30)))
  constant = []
  for component in components:
    pieces, close, keys = pieces_of(component)
    _, sizes = _distinct(pieces, close, keys)
    constant.append(len(sizes) == 1 and sizes[0] == len(pieces))
  groups = [list(c) for c, fixed in zip(components, constant) if not fixed]
  for component, fixed in zip(components, constant):
    if not fixed:
      continue
    partners = [group for group in groups
                if (reads(group) & reads(component) or not reads(component))
                and not always_on_M[group].any()]
    if len(partners) == 1:
      partners[0].extend(component)
    else:
      groups.append(list(component))
  return groups


def _in_row_span(vectors_NxD: np.ndarray, rows_MxD: np.ndarray,
                 tolerance: float) -> np.ndarray:
  """`vectors_NxD` projected onto the span of `rows_MxD` (its singular
  directions above `tolerance`): what an MLP writes lies there. Under noise
  a written vector also carries its neurons' noise, which large activations
  that cancel (a ramp's pair) make large, along every direction; exact
  weights' vectors are in the span already (and kept as they are)."""
  _, singular, right_MxD = np.linalg.svd(rows_MxD, full_matrices=False)
  span_RxD = right_MxD[singular > tolerance * singular[0]]
  projected_NxD = (vectors_NxD @ span_RxD.T) @ span_RxD
  outside_N = np.linalg.norm(vectors_NxD - projected_NxD, axis=1)
  inside = outside_N <= tolerance * np.linalg.norm(vectors_NxD, axis=1)
  return np.where(inside[:, None], vectors_NxD, projected_NxD)


def mlp_atoms(output_rows_MxD: np.ndarray, reads_KxM: np.ndarray,
              hidden_PxM: np.ndarray, bos_hidden_BxM: np.ndarray,
              probe_hidden_NxM: np.ndarray, atoms: Atoms,
              tolerance: float) -> np.ndarray:
  """The atoms an MLP writes: per independent part of its output rows (a
  component of their linear matroid; `_with_constant_parts_joined`) that
  reaches outside the known atoms' span, the distinct vectors that part
  writes (its neurons' activations times their rows: `hidden_PxM` at every
  checked non-BOS position; `bos_hidden_BxM` at BOS and `probe_hidden_NxM`
  on probes, used for values no checked position takes, e.g. a
  SelectorWidth's width 0, which no input has; under noise, the probes'
  values alone where the checked positions blur). `reads_KxM` is what each
  neuron reads of each atom.

  A part's vectors are taken whole, not projected off the known span: under
  a non-orthogonal basis change that projection would mix in directions that
  later modules read. What a whole vector carries along known atoms is what
  tracr's MLP cleans up (a SelectorWidth zeroes its head's direction), which
  nothing later reads."""
  empty = np.zeros((0, output_rows_MxD.shape[1]))
  scale = np.linalg.norm(output_rows_MxD, axis=1).max(initial=0)
  if scale <= 0:
    return empty
  live = np.flatnonzero(np.linalg.norm(output_rows_MxD, axis=1)
                        > tolerance * scale)
  # Told apart by what they write outside the known span: a value may be
  # written with different clean-ups of known atoms (at BOS, on probes).
  fresh = _outside_span(atoms.vectors_KxD)
  fresh_MxD = fresh(output_rows_MxD[live])
  close = max(tolerance, 1e-3)
  # A neuron that never fires under tracr's weights may sit a rounding
  # error above 0 in another basis: its pieces are 0 (no value), judged
  # against what the whole MLP writes, not against the part alone.
  written = np.linalg.norm(fresh(hidden_PxM[:, live] @ output_rows_MxD[live]),
                           axis=1).max(initial=0)

  known: dict[tuple[int, ...], tuple[np.ndarray, float, np.ndarray]] = {}

  def pieces_of(component: list[int]) -> tuple[np.ndarray, float, np.ndarray]:
    if tuple(component) not in known:
      neurons = live[component]
      pieces = hidden_PxM[:, neurons] @ output_rows_MxD[neurons]
      keys = fresh(pieces)
      silent = np.linalg.norm(keys, axis=1) <= tolerance * written
      pieces[silent], keys[silent] = 0.0, 0.0
      known[tuple(component)] = pieces, close, keys
    return known[tuple(component)]

  # Always on: the same activation, above 0, at every checked position.
  firing_PxL = hidden_PxM[:, live]
  always_on_L = ((firing_PxL.min(0) > tolerance * firing_PxL.max(initial=0))
                 & (np.ptp(firing_PxL, axis=0) <= close * firing_PxL.max(0)))
  found = []
  for component in _with_constant_parts_joined(
      matroid_components(fresh_MxD, tolerance), pieces_of, reads_KxM[:, live],
      always_on_L, tolerance):
    new_rank = _rank(fresh_MxD[component], tolerance)
    if not np.linalg.norm(fresh_MxD[component], axis=1).max() > (
        tolerance * scale):
      continue  # Writes only along known atoms.
    neurons = live[component]
    rows = output_rows_MxD[neurons]
    distinct, sizes = _distinct(*pieces_of(component))
    if len(distinct) > new_rank and (sizes[:new_rank].sum()
                                     >= _MAJORITY * sizes.sum()):
      # Noisy weights: most outputs near one of a few vectors, the rest
      # between them (a ramp neuron half on). The few are the values.
      distinct = distinct[:new_rank]
    # A neuron no check input fires may sit a rounding error above 0 on a
    # probe: that is no value.
    def written_by(hidden_NxM: np.ndarray) -> np.ndarray:
      vectors = hidden_NxM[:, neurons] @ rows
      return vectors[np.linalg.norm(fresh(vectors), axis=1)
                     > tolerance * scale]

    on_probes = written_by(probe_hidden_NxM)
    probed = np.concatenate([written_by(bos_hidden_BxM), on_probes])
    # A value no input produces still has its direction (tracr writes one
    # per value of the domain, and later modules read it): as its neuron
    # would write it, firing at its largest weight on an atom (tracr's
    # categorical MLPs fire at 1 from weights, and biases through `one`, of
    # magnitude 1); a neuron that reads nothing (tracr's SequenceMap of one
    # variable with itself, at unequal values) as large as the MLP's
    # largest output.
    fires_at = np.abs(reads_KxM[:, neurons]).max(0)
    fires_at = np.where(fires_at > tolerance, fires_at,
                        written / np.linalg.norm(rows, axis=1))
    would_write = rows * fires_at[:, None]
    for candidates in (probed, would_write):
      for vector in _distinct(candidates, close, fresh(candidates))[0]:
        if len(distinct) < new_rank and all(
            np.linalg.norm(fresh(vector[None] - d[None]))
            > close * np.linalg.norm(d) for d in distinct):
          distinct = np.concatenate([distinct, vector[None]])
    if new_rank == 1:
      if len(distinct) == 1:  # One value (or 0 and one): that vector.
        found.append(distinct)
      elif len(distinct) > 1:  # A numerical variable: one direction.
        largest = distinct[np.argmax(np.linalg.norm(distinct, axis=1))]
        found.append((largest / np.linalg.norm(largest))[None])
      continue
    if len(distinct) != new_rank or _rank(distinct, tolerance) != new_rank:
      # Noisy weights: a head's soft attention puts most positions between
      # two values (a ramp neuron part on); on the probes, at exact shares,
      # each value is written whole.
      distinct = _distinct(on_probes, close, fresh(on_probes))[0]
    if len(distinct) != new_rank or _rank(distinct, tolerance) != new_rank:
      raise ReadoutError(f"an MLP writes a {new_rank}-direction part that "
                         f"takes {len(distinct)} distinct values on the "
                         "check inputs, not one per direction")
    found.append(_in_row_span(distinct, rows, tolerance))
  return np.concatenate(found) if found else empty


@functools.lru_cache(maxsize=16)
def _check_inputs(vocab: tuple, max_seq_len: int, seed: int) -> tuple[tuple]:
  """The basis pass's check inputs, drawn once per vocab and length."""
  return tuple(tuple(xs) for xs in inputs_lib.check_inputs(
      np.random.default_rng(seed), list(vocab), max_seq_len,
      _NUM_CHECK_INPUTS, _NUM_CHECK_INPUTS))


def _streams(params: Params, model: saved.SavedModel,
             check_inputs: Sequence[tuple]) -> tuple[list, np.ndarray]:
  """The residual streams after every module on the check inputs (one
  forward pass), and which positions are checked: not BOS, not padding."""
  token_ids_BxT, allowed_BxTxT, mask_BxT = forward.padded_batch(
      model.input_tokens, check_inputs, model.compiler_bos, model.causal)
  mask_BxT[:, 0] = False
  return forward.residual_streams(params, token_ids_BxT, model.num_heads,
                                  allowed_BxTxT), mask_BxT


def _mlp_hidden(params: Params, model: saved.SavedModel,
                before_mlp_BxTxD: np.ndarray, mask_BxT: np.ndarray,
                layer: int, probe_atoms_NxD: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Layer `layer`'s MLP activations at every checked position of the
  residual stream before it, at every BOS position, and on probes: a
  token row (tracr's `one` to an MLP that does not read tokens) plus one of
  `probe_atoms_NxD` (a head's atom of this layer) at 1/(w+1) for w = 0..
  max_seq_len: a SelectorWidth of every width, also those no check input
  has."""
  first = params[params_lib.mlp_key(layer, "linear_1")]
  hidden = lambda residual_PxD: np.maximum(
      residual_PxD @ first["w"] + first["b"], 0)
  token_VxD = params["token_embed"]["embeddings"]
  plain = token_VxD[model.input_tokens.index(model.vocab[0])]
  # A SelectorWidth head puts 1/(w+1) of its atom where w positions match.
  shares = 1.0 / np.arange(1, model.max_seq_len + 2)
  probes = np.concatenate([plain + share * probe_atoms_NxD
                           for share in shares])
  return (hidden(before_mlp_BxTxD[mask_BxT]), hidden(before_mlp_BxTxD[:, 0]),
          hidden(probes))


def find_atoms(model: saved.SavedModel, params: Params, tolerance: float,
               check_inputs: Sequence[tuple]) -> Atoms:
  """Every residual direction tracr's modules write, in writing order (the
  MLPs' from their outputs on `check_inputs`)."""
  atoms = embedding_atoms(params, tolerance)
  num_layers = params_lib.check_params(params).num_layers
  streams, mask_BxT = _streams(params, model, check_inputs)
  for layer in range(num_layers):
    query = params[params_lib.attn_key(layer, "query")]["w"]
    key_size = query.shape[1] // model.num_heads
    value = params[params_lib.attn_key(layer, "value")]["w"]
    output = params[params_lib.attn_key(layer, "linear")]["w"]
    before = len(atoms.vectors_KxD)
    for head in range(model.num_heads):
      part = slice(head * key_size, (head + 1) * key_size)
      new_NxD, sources_N = head_atoms(value[:, part] @ output[part], atoms,
                                      tolerance)
      atoms = atoms.extended(new_NxD, 2 * layer + 1, sources_N.tolist())
    first = params[params_lib.mlp_key(layer, "linear_1")]["w"]
    second = params[params_lib.mlp_key(layer, "linear_2")]["w"]
    atoms = atoms.extended(mlp_atoms(
        second, atoms.vectors_KxD @ first,
        *_mlp_hidden(params, model, streams[2 * layer + 1], mask_BxT, layer,
                     atoms.vectors_KxD[before:]), atoms, tolerance),
                           2 * layer + 2)
  if _rank(atoms.vectors_KxD, tolerance) != len(atoms.vectors_KxD):
    raise ReadoutError("the residual directions found are not independent")
  return atoms


def as_the_unembedding_reads(atoms: Atoms, unembed_DxO: np.ndarray,
                              numerical: bool) -> Atoms:
  """`atoms` with a categorical output's replaced by the vectors the
  unembedding reads one value each from (the dual basis of its columns in
  the span of the atoms it reads). Under noise an MLP writes each value a
  little mixed with its neighbours (its ramp neurons part on, also on the
  probes), and so does tracr's own SelectorWidth at its largest widths
  (1/(w+1) too close to the next); the unembedding decides the output, so
  it defines the values. Where the output's atoms are a head's copies, the
  atoms they were copied from are taken the same way (each source is then
  the preimage of one output value): tracr's Aggregate copies value for
  value, so a SelectorWidth's mixed widths are its source's too."""
  reads_KxO = atoms.vectors_KxD @ unembed_DxO
  magnitude = np.abs(reads_KxO).max(1)
  rows = np.flatnonzero(magnitude > _OUTPUT_SHARE * magnitude.max(initial=0))
  block_OxO = reads_KxO[rows]
  if (numerical or len(rows) != unembed_DxO.shape[1]
      or np.any(rows < atoms.tokens + len(atoms.positions))
      or np.linalg.cond(block_OxO) > _MAX_OUTPUT_MIXING
      or np.all(np.sum(np.abs(block_OxO) > _EXACT_TOLERANCE
                       * np.abs(block_OxO).max(), axis=1) == 1)):
    return atoms  # Not one output, or read one value per atom already.
  vectors_KxD = atoms.vectors_KxD.copy()
  mixing_OxO = np.linalg.inv(block_OxO)
  sources_K = atoms.sources_K()
  while True:
    vectors_KxD[rows] = mixing_OxO @ atoms.vectors_KxD[rows]
    sources = sources_K[rows]
    if np.any(sources < 0) or len(set(sources.tolist())) != len(rows):
      return dataclasses.replace(atoms, vectors_KxD=vectors_KxD)
    rows = sources


def _split_one(rows_KxW: np.ndarray, tokens: int, bos_row: int,
               reads_one: str, same: float = 1e-3) -> np.ndarray:
  """Reader rows in the atoms' basis with tracr's `one` as row 0: token
  rows hold `one` + the token's weight. `reads_one` says how to split:
  "never" (keys, values: tracr's never read `one`), "bos" (queries: they
  never read BOS, so `one` is what they read from BOS), "neuron" (per MLP
  neuron: a neuron reading the same from every token but BOS reads that
  from `one`, else as queries; the same: within `same` of the largest)."""
  token_TxW = rows_KxW[:tokens]
  if reads_one == "never":
    one_W = np.zeros(rows_KxW.shape[1])
  else:
    one_W = token_TxW[bos_row].copy()
    if reads_one == "neuron":
      others = np.delete(token_TxW, bos_row, axis=0)
      spread = others.max(0) - others.min(0)
      scale = np.abs(token_TxW).max(0) + 1e-30
      alike = spread <= same * scale
      one_W[alike] = others.mean(0)[alike]
  token_TxW = token_TxW - one_W
  return np.concatenate([one_W[None], token_TxW, rows_KxW[tokens:]])


def _cleaned(matrix: np.ndarray, noisy: bool, relative_floor: float = 0.0,
             noise: Optional[np.ndarray] = None) -> np.ndarray:
  """`matrix` with its absent entries set to 0: rounding error (exact
  weights) or, for noisy weights, entries at the noise level (`noise`, or by
  default `noise_level(matrix)`; broadcast against `matrix`) or below
  `relative_floor` times the largest, and the rest near a multiple of 1/2
  (within that) moved onto it (tracr writes round numbers)."""
  magnitude = np.abs(matrix)
  if not magnitude.size or magnitude.max() == 0:
    return matrix
  if not noisy:
    return np.where(magnitude <= _ROUNDING * magnitude.max(), 0.0, matrix)
  noise = noise_level(matrix) if noise is None else noise
  floor = np.maximum(noise, relative_floor * float(magnitude.max()))
  result = np.where(magnitude <= floor, 0.0, matrix)
  nearest = np.round(result * 2) / 2
  return np.where(np.abs(result - nearest) <= floor, nearest, result)


def noise_level(matrix: np.ndarray) -> float:
  """The noise of a noisy tracr matrix: most of its entries are 0, so its
  median magnitude is the noise's (times `_NOISE_FACTOR`)."""
  if not matrix.size:
    return 0.0
  return _NOISE_FACTOR * float(np.median(np.abs(matrix)))


def _factored(product_DxE: np.ndarray, width: int
              ) -> tuple[np.ndarray, np.ndarray]:
  """Two factors [D, width] and [width, E] of `product_DxE` (rank at most
  `width` once cleaned): a head's query-key or value-output pair is fixed
  only up to an invertible map of its dimensions, its product exactly."""
  left, singular, right = np.linalg.svd(product_DxE, full_matrices=False)
  root = np.sqrt(singular[:width])
  first = np.zeros((product_DxE.shape[0], width))
  second = np.zeros((width, product_DxE.shape[1]))
  first[:, :len(root)] = left[:, :width] * root
  second[:len(root)] = root[:, None] * right[:width]
  return first, second


def in_atom_basis(model: saved.SavedModel, params: Params, atoms: Atoms,
                  noisy: bool = False) -> saved.SavedModel:
  """The model rewritten in the atoms' basis (`one` first, then the atoms),
  with its output decoded from residual directions as tracr's is. For
  `noisy` weights each head's query-key and value-output products are
  cleaned and factored again (the factors alone are not tracr's: a
  per-head map mixes them), and every module reads only the atoms written
  before it and writes only its own (an MLP also its layer's heads': tracr's
  SelectorWidth cleans its head's direction up): what noise puts elsewhere."""
  vectors_KxD = atoms.vectors_KxD
  num_atoms, tokens = len(vectors_KxD), atoms.tokens
  writers_K = atoms.writers_K()
  width = 1 + num_atoms
  bos_row = model.input_tokens.index(model.compiler_bos)
  clean = lambda matrix: _cleaned(matrix, noisy)

  # Noise is dropped entry by entry only where rows or columns are a fixed
  # basis (MLP neurons, output values), not a head's dimensions, which a
  # per-head map mixes: there the products are cleaned.
  def solve(writer_NxD: np.ndarray, writes_K: np.ndarray,
            by_entry: bool = True) -> tuple[np.ndarray, float]:
    """A writer's rows in the atoms' basis and, noisy and `by_entry`, their
    noise level (else 0); noisy, only onto `writes_K` (and, `by_entry`,
    above the noise, measured on all its rows: its own few atoms may hold
    mostly signal)."""
    coefficients_NxK = np.linalg.lstsq(vectors_KxD.T, writer_NxD.T,
                                       rcond=None)[0].T
    noise = noise_level(coefficients_NxK) if noisy and by_entry else 0.0
    if noisy:
      coefficients_NxK[:, ~writes_K] = 0.0
    if noisy and by_entry:
      coefficients_NxK[np.abs(coefficients_NxK) <= noise] = 0.0
    return np.concatenate([np.zeros((len(writer_NxD), 1)), coefficients_NxK],
                          axis=1), noise

  def read(reader_DxN: np.ndarray, reads_one: str, module: int,
           by_entry: bool = True) -> tuple[np.ndarray, float]:
    """A reader's rows in the atoms' basis (`_split_one`) and, noisy and
    `by_entry`, their noise level (else 0); noisy, only those of atoms
    written before `module` (and, `by_entry`, above the noise of those)."""
    rows_KxN = vectors_KxD @ reader_DxN
    if noisy:
      rows_KxN[writers_K >= module] = 0.0
    rows_KxN = _split_one(rows_KxN, tokens, bos_row, reads_one,
                          _NEURON_NOISE if noisy else 1e-3)
    # Row 0 is `one`; atom k is row k + 1. (Reads of later atoms are no
    # measure of the noise: a later atom carries its writer's noise along
    # earlier directions, which readers amplify.)
    noise = (noise_level(rows_KxN[1:][writers_K < module])
             if noisy and by_entry else 0.0)
    if noisy and by_entry:
      rows_KxN[np.abs(rows_KxN) <= noise] = 0.0
    return rows_KxN, noise

  new: Params = {}
  token_embed = np.zeros((tokens, width))
  token_embed[:, 0] = 1.0
  token_embed[np.arange(tokens), 1 + np.arange(tokens)] = 1.0
  new["token_embed"] = {"embeddings": token_embed}
  position = np.zeros((len(params["pos_embed"]["embeddings"]), width))
  writes = list(atoms.positions)
  position[writes, 1 + tokens + np.arange(len(writes))] = 1.0
  new["pos_embed"] = {"embeddings": position}
  num_layers = params_lib.check_params(params).num_layers
  for layer in range(num_layers):
    attn = lambda name: params[params_lib.attn_key(layer, name)]
    heads, mlp = 2 * layer + 1, 2 * layer + 2
    query, _ = read(attn("query")["w"], "bos", heads, by_entry=False)
    key, _ = read(attn("key")["w"], "never", heads, by_entry=False)
    value, _ = read(attn("value")["w"], "never", heads, by_entry=False)
    output, _ = solve(attn("linear")["w"], writers_K == heads,
                      by_entry=False)
    if noisy:
      key_size = query.shape[1] // model.num_heads
      for head in range(model.num_heads):
        part = slice(head * key_size, (head + 1) * key_size)
        clean_product = lambda m: _cleaned(m, noisy, _NOISE_RELATIVE)
        query[:, part], key_part_T = _factored(
            clean_product(query[:, part] @ key[:, part].T), key_size)
        key[:, part] = key_part_T.T
        value[:, part], output[part] = _factored(
            clean_product(value[:, part] @ output[part]), key_size)
    for name, matrix in (("query", query), ("key", key), ("value", value),
                         ("linear", output)):
      bias = attn(name)["b"]
      new[params_lib.attn_key(layer, name)] = {
          "w": clean(matrix),
          "b": clean(solve(bias[None], writers_K == heads)[0][0]
                     if name == "linear" else bias)}
    first_key = params_lib.mlp_key(layer, "linear_1")
    second_key = params_lib.mlp_key(layer, "linear_2")
    mlp_writes_K = (writers_K == heads) | (writers_K == mlp)
    first_DxM, first_noise = read(params[first_key]["w"], "neuron", mlp)
    second_MxD, second_noise = solve(params[second_key]["w"], mlp_writes_K)
    if noisy:
      # A neuron reads its inputs at one magnitude (its slope), noise reads
      # every other atom; not `one`, whose weight is a threshold (may be
      # small).
      atom_reads = np.abs(first_DxM[1:])
      first_DxM[1:][atom_reads <= _NEURON_NOISE * atom_reads.max(0)] = 0.0
    # Neuron scaling is a symmetry: each neuron's largest output weight 1.
    scale_M = np.abs(second_MxD).max(1)
    scale_M = np.where(scale_M > 0, scale_M, 1.0)
    new[first_key] = {
        "w": _cleaned(first_DxM * scale_M, noisy, noise=first_noise * scale_M),
        "b": clean(params[first_key]["b"] * scale_M)}
    new[second_key] = {
        "w": _cleaned(second_MxD / scale_M[:, None], noisy,
                      noise=second_noise / scale_M[:, None]),
        "b": clean(solve(params[second_key]["b"][None], mlp_writes_K)[0][0])}
  return _with_output(model, new, read(params[params_lib.UNEMBED]["w"],
                                       "never", 2 * num_layers + 1)[0],
                      params[params_lib.UNEMBED]["b"],
                      _NOISY_OUTPUT_TOLERANCE if noisy else 1e-2)


def _with_output(model: saved.SavedModel, params: Params,
                 unembed_DxO: np.ndarray, bias_O: np.ndarray,
                 tolerance: float) -> saved.SavedModel:
  """tracr's output directions where the unembedding reads one direction per
  output, up to `tolerance` (ReadoutError otherwise), each rescaled to the
  weight it is read with, so that tracr's decoding reads it with 1."""
  magnitude = np.abs(unembed_DxO)
  dims = tuple(int(d) for d in magnitude.argmax(0))
  for column, dim in enumerate(dims):
    others = np.delete(magnitude[:, column], dim)
    if others.max(initial=0) > tolerance * magnitude[dim, column]:
      raise ReadoutError("the unembedding does not read one direction per "
                         "output value")
  if np.abs(bias_O).max(initial=0) > tolerance:
    raise ReadoutError("the unembedding has a bias")
  # The scale of a direction is a symmetry (writers times c, readers over
  # c); tracr's output directions are read with weight 1 (or, numerical,
  # any weight: the output's own scale), so the unembedding says each one's.
  for column, dim in enumerate(dims):
    factor = unembed_DxO[dim, column]
    for key, leaves in params.items():
      if key.endswith(("/linear", "linear_2")):
        leaves["w"][:, dim] *= factor
        leaves["b"][dim] *= factor
      elif key.endswith(("query", "key", "value", "linear_1")):
        leaves["w"][dim] /= factor
      elif key == "token_embed" or key == "pos_embed":
        leaves["embeddings"][:, dim] *= factor
  output = OutputDecoding(dims, model.output.values, model.output.numerical)
  return saved.SavedModel(
      params={k: {n: v.astype(np.float32) for n, v in leaves.items()}
              for k, leaves in params.items()},
      vocab=model.vocab, max_seq_len=model.max_seq_len,
      compiler_bos=model.compiler_bos, compiler_pad=model.compiler_pad,
      num_heads=model.num_heads, causal=model.causal, output=output,
      token_order=model.token_order)


def _same_outputs(model: saved.SavedModel, rewritten: saved.SavedModel,
                  check_inputs: Sequence[tuple]) -> bool:
  run = lambda m: forward.outputs(m.params, m.num_heads, m.input_tokens,
                                  m.output, check_inputs, m.compiler_bos,
                                  m.causal)
  return all(compare.same_output(expected, got, model.output.numerical)
             for expected, got in zip(run(model), run(rewritten)))


def tracr_basis_views(model: saved.SavedModel) -> Iterator[saved.SavedModel]:
  """`model` with its residual stream in tracr's basis (module doc), as the
  read-out should try it, lazily, best first.

  A model already in tracr's basis is the one view. Otherwise: an exact
  basis change of tracr's weights (directions absent below
  `_EXACT_TOLERANCE` relative), when the rewritten model gives the same
  outputs on the check inputs; then the weights seen as noisy (absent
  below `_NOISY_TOLERANCE`, small entries cleaned), whose rewrite is judged
  later, by the program's agreement with the weights. Noisy weights may
  pass the first (an exact basis change keeps their noise), which the
  later passes then cannot read.
  """
  if params_lib.UNEMBED not in model.params:
    yield model
    return
  if model.num_heads is None:
    raise ReadoutError("the number of heads is unknown")
  params = _float64(model)
  check_inputs = _check_inputs(tuple(model.vocab), model.max_seq_len, seed=0)
  unembed_DxO = params[params_lib.UNEMBED]["w"]
  try:
    atoms = as_the_unembedding_reads(
        find_atoms(model, params, _EXACT_TOLERANCE, check_inputs),
        unembed_DxO, model.output.numerical)
    rewritten = in_atom_basis(model, params, atoms)
    exact = _same_outputs(model, rewritten, check_inputs[:_NUM_SAME_OUTPUTS])
  except ReadoutError:
    exact = False
  if exact:
    yield rewritten
  atoms = as_the_unembedding_reads(
      find_atoms(model, params, _NOISY_TOLERANCE, check_inputs),
      unembed_DxO, model.output.numerical)
  yield in_atom_basis(model, params, atoms, noisy=True)
