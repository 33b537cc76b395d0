"""The checkpoint format: the `semseg` entry, its version, and upgrades from older versions.

Every checkpoint semseg.train writes holds, besides Lightning's state, an entry `semseg` with
the model config that built the net (so eval, predict and export rebuild it without the run's
config), the class names, the data's normalisation and palette, and the schedule's length.
"""

CHECKPOINT_KEY = "semseg"  # marks checkpoints written by this project
LAST_CHECKPOINT = "last.ckpt"  # written every epoch and on a signal; where `ckpt_path=last` looks

# Older files are upgraded on read, to what they were trained with in today's terms:
#   2: the net classes got names that say what they are (RENAMED_TARGETS, RENAMED_KEYS);
#   3: the model config names its loss and optimizer groups, and the U-Net its width rule
#      (ADDED_SETTINGS: the values that reproduce what earlier versions did).
CHECKPOINT_FORMAT = 3
RENAMED_TARGETS = {
    "semseg.models.segmentation_model.SegmentationModel": "semseg.models.encoder_decoder.EncoderDecoder",
    "semseg.models.sliding_window.SlidingWindowClassifier": "semseg.models.patch_classifier.PatchClassifier",
}
RENAMED_KEYS = {"semseg.models.patch_classifier.PatchClassifier": {"inference": "mode"}}
# settings added in format 3, at the values earlier versions used (plain cross-entropy, one
# parameter group, a U-Net decoder as wide as its encoder)
ADDED_SETTINGS = {
    "loss": {"_target_": "semseg.models.losses.CrossEntropy", "class_weights": None, "absent_class_weight": None},
    "optimizer_groups": {"encoder_lr_mult": 1.0, "no_weight_decay_norm_bias": False},
}
UNET_DECODER = "semseg.models.decoders.unet.UNetDecoder"


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


def add_settings(config: dict) -> dict:
    """A format 1 or 2 model config with the settings format 3 added, as those runs had them."""
    config = {**ADDED_SETTINGS, **config}
    net = config.get("net")
    decoder = net.get("decoder") if isinstance(net, dict) else None
    if isinstance(decoder, dict) and decoder.get("_target_") == UNET_DECODER:
        config["net"] = {**config["net"], "decoder": {"max_width_per_stride": None, **decoder}}
    return config


def upgrade_meta(meta: dict) -> dict:
    """The `semseg` entry of a checkpoint of any earlier format, in the current format."""
    version = meta.get("format", 1)
    config = meta["model_config"]
    if version < 2:
        config = upgrade_config(config)
    if version < 3 and config.get("_target_") == "semseg.models.module.SegmentationModule":
        config = add_settings(config)
    return {**meta, "model_config": config, "format": CHECKPOINT_FORMAT}
