"""The trial layer: one training run from a typed config (no Ray, no W&B)."""
