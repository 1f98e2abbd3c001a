"""The weight ladder: models that compute a tracr program without tracr's weights.

R0 as compiled; R1 residual permutation, per-head maps, neuron scaling; R2 an
invertible map of the residual stream; R3 R2 plus noise. Every rung is a pure
function of a model and a seed.
"""
