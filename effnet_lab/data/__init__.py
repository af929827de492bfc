"""Images in, tensors out: what a model's inputs are and where they come from.

    config      the data config (input size, crop, interpolation, mean/std), resolved as timm does
    transforms  eval and training preprocessing pipelines
    images      decoding any image Pillow reads (16-bit, CMYK, palette, EXIF-rotated) to RGB
    folders     image folders of your own (root/train/<class>, root/<class>), checked before training
    resources   the shipped ImageNet class names and the repository's data/ folder
"""
