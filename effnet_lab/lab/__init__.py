"""The workbook's tools: a leaf that nothing else in effnet_lab imports.

    explain     Grad-CAM with captum, and its sanity and faithfulness checks
    plots       training curves and confusion matrices (matplotlib)
    widgets     the compound-scaling explorer (ipywidgets)
    measure     parameters and FLOPs of built modules, counted by torch
    diagrams    MBConv / Fused-MBConv drawn part by part from the built block (notebook 09)
    se_study    the squeeze-excitation study of notebook 02
    studies     the experiments of notebooks 07-09 (scaling, quantization, fused, progressive)
    exercises   graded exercises: check(key, answer), solution(key), progress()
"""
