"""Checkpoints: their format, reading them, and resuming from them.

    format    the `semseg` entry's key and version, the `last.ckpt` name, upgrades of old formats
    reading   read_checkpoint, load_model, best_score
    resume    which checkpoint `ckpt_path` means, and the refusals of one that cannot resume
    allowlist what a stored model config may build (semseg's own building blocks), checked first
    description  the stored class names, normalisation and palette, checked as data
    __main__  `python -m semseg.checkpoints <file>`: what a checkpoint holds, without building it

Importing `format` or `resume` does not import the models (callbacks rely on it). Files are written
whole or not at all by semseg.utils.atomic (replaced_atomically, Lightning's AtomicCheckpointIO plugin).
"""
