"""Lightning callbacks the configs and entry points add to a Trainer."""
