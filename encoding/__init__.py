"""Encode: programs as token rows and back, compiled weights as a weight graph
(or, optionally, weight blocks), and the batches the meta-model trains on."""
