"""Model: the graph-encoder + program-decoder meta-model, its training, beam
search with verification, held-out metrics and the `decompiler` API."""
