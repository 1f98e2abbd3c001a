"""Sample: the RASP program language, a sampler of programs tracr compiles
faithfully, and the sharded datasets of programs with their weights."""
