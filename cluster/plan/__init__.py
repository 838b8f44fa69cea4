"""The plan (`revisor plan`): the model's shape read from its config.json, where every learner
rank and rollout worker is placed, per-GPU memory, and advice when it does not fit."""
