"""Experiments that train many networks: one module per study.

    scaling    does compound scaling win? (notebook 07; `python -m effnet_lab.lab.studies.scaling`)
"""
