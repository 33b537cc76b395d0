"""The checkpoint format: the `semseg` entry, its version, and upgrades from older versions.

Every checkpoint semseg.train writes holds, besides Lightning's state, an entry `semseg` with
the model config that built the net (so eval, predict and export rebuild it without the run's
config), the class names, the data's normalisation and palette, and the schedule's length.
"""

CHECKPOINT_KEY = "semseg"  # marks checkpoints written by this project
LAST_CHECKPOINT = "last.ckpt"  # written every epoch and on a signal; where `ckpt_path=last` looks

# version 2: the net classes got names that say what they are; version 1 files are upgraded on read
CHECKPOINT_FORMAT = 2
RENAMED_TARGETS = {
    "semseg.models.segmentation_model.SegmentationModel": "semseg.models.encoder_decoder.EncoderDecoder",
    "semseg.models.sliding_window.SlidingWindowClassifier": "semseg.models.patch_classifier.PatchClassifier",
}
RENAMED_KEYS = {"semseg.models.patch_classifier.PatchClassifier": {"inference": "mode"}}


def upgrade_config(node):
    """A model config written by an older semseg, with today's `_target_`s and keys."""
    if isinstance(node, list):
        return [upgrade_config(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: upgrade_config(value) for key, value in node.items()}
    if "_target_" in node:
        node["_target_"] = RENAMED_TARGETS.get(node["_target_"], node["_target_"])
        for old, new in RENAMED_KEYS.get(node["_target_"], {}).items():
            if old in node:
                node[new] = node.pop(old)
    return node


def upgrade_meta(meta: dict) -> dict:
    """The `semseg` entry of a checkpoint of any earlier format, in the current format."""
    if meta.get("format", 1) < CHECKPOINT_FORMAT:
        meta = {**meta, "model_config": upgrade_config(meta["model_config"]), "format": CHECKPOINT_FORMAT}
    return meta
