"""The paper, as data and arithmetic: no torch, no numpy, nothing else of effnet_lab.

    scaling       α, β, γ, φ; the released multipliers; channel and repeat rounding
    blocks        the block kinds (the one table) and the cost of one block
    architecture  the stage tables (Table 1, Lite, EdgeTPU) and the config that scales them
    cost          params, MACs and activations of a whole network, from its config alone

A slider can recompute a network from these in microseconds, and `import effnet_lab.paper`
loads in milliseconds.
"""
