"""One training job: its phases (pretraining, SFT, RL, evaluation), the RL driver, the fleet
of rollout workers and their liveness, the broker, trajectory queue and episode ledger, live
control, the Ray runtime, and the driver's telemetry. `cluster.job.loop` is the same RL loop
written out on one screen."""
