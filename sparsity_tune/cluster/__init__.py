"""The cluster layer: a sweep submitted to SLURM as a Ray cluster job."""
