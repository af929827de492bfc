"""Experiments behind the notebooks: one module per study.

    scaling       does compound scaling win? (notebook 07; `python -m effnet_lab.lab.studies.scaling`)
    quantization  does the Lite design survive int8 better? (notebook 08)
    fused         Fused-MBConv in the early stages: FLOPs against speed and memory (notebook 09)
"""
