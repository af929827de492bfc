"""The EfficientNet family in torch.

    blocks    ConvBnAct, SqueezeExcite, DropPath, MBConv, FusedMBConv; `block_class(kind)`
    network   EfficientNet (and its features-only trunk), built from a paper config
    registry  the named models (B0-B7, EdgeTPU, Lite, tf_ ports) and `create_model`
    predict   labelled top-k predictions for image files
"""
