"""Show what a checkpoint holds, without building anything from it.

    python -m semseg.checkpoints <file>.ckpt [trusted.Target ...]

Prints the stored model config as YAML (every `_target_` it would build), the classes,
normalisation and format, and whether eval, predict and export would accept it; exits 2 with the
one-line reason when they would not. The file is read with `weights_only=True` and checked as
data, the way every entry point reads it.
"""

import sys

import yaml

from semseg.checkpoints.allowlist import targets_in
from semseg.checkpoints.format import CHECKPOINT_KEY
from semseg.checkpoints.reading import read_checkpoint
from semseg.errors import SemsegError


def main(arguments: list[str]) -> int:
    if not arguments:
        print(__doc__.strip().splitlines()[0], "\n\n    python -m semseg.checkpoints <file>.ckpt", file=sys.stderr)
        return 2
    path, trusted = arguments[0], arguments[1:]
    try:
        meta = read_checkpoint(path, trusted)[CHECKPOINT_KEY]
    except SemsegError as error:
        print(f"semseg: error: {error}", file=sys.stderr)
        return 2
    print(yaml.safe_dump({"model_config": meta["model_config"]}, sort_keys=False), end="")
    for key in ("format", "class_names", "mean", "std", "schedule_steps"):
        print(f"{key}: {meta.get(key)}")
    print(f"builds: {', '.join(sorted(targets_in(meta['model_config'])))}")
    print("accepted: eval, predict and export would build this model")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
