"""sparsity-tune: hyperparameter sweeps for research on sparse neural networks.

Layers, each importing only the ones above it in this list (tests/unit/test_layers.py checks):

- :mod:`sparsity_tune.metrics`, :mod:`sparsity_tune.layout`: the shared vocabulary (metric names,
  the files of a trial and an experiment directory);
- :mod:`sparsity_tune.trial`: one training run (config, data, models, pruning, trainer, CLI);
- :mod:`sparsity_tune.sweep`: many trials on Ray Tune (spec, search, trainable, launch, W&B);
- :mod:`sparsity_tune.cluster`: a sweep on SLURM.

The package :mod:`analysis` reads experiment directories; it imports the shared vocabulary and
the trial layer's config helpers, never the sweep or cluster layers.
"""
