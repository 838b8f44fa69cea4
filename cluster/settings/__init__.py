"""Settings: the experiment and study models (the one source of every default), YAML files
with dotted overrides, the settings several parts share, and the checks of settings against
the checkpoint. Loading settings imports neither torch nor transformers."""
