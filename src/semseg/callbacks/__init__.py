"""Lightning callbacks the configs and entry points add to a Trainer: validation reports, prediction files."""
