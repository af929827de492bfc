"""The workbook's tools: a leaf that nothing else in effnet_lab imports.

    explain     Grad-CAM with captum, and its sanity and faithfulness checks
    plots       training curves and confusion matrices (matplotlib)
    widgets     the compound-scaling explorer (ipywidgets)
    measure     parameters and FLOPs of built modules, counted by torch
    se_study    the squeeze-excitation study of notebook 02
    exercises   graded exercises: check(key, answer), solution(key)
"""
