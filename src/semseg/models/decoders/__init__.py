"""Decoders turn an encoder's feature list into per-pixel class logits at stride 1.

Every decoder is built from the encoder's `channels` and `reductions`, so it fits any backbone.
"""
