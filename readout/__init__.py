"""The read-out: a program read straight off a model's weights, no training."""
