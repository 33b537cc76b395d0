"""Lightning callbacks only: checkpoints, preemption, run state, validation and evaluation reports, prediction files, wall clock, final validation."""
