"""Compiled tracr models: compile, save and load, check, run, compare, verify.

The runtime every later stage shares. It depends on tracr alone: the sampler
(`rasp_gen`) compiles through it and checks faithfulness with it, the encoders
read its params layout, and the judges and the decompiler verify with it.
"""
