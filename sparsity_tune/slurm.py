"""``python -m sparsity_tune.slurm``: Submit a sweep to SLURM (the code lives in :mod:`sparsity_tune.cluster.slurm`)."""

import sys

from sparsity_tune.cluster.slurm import main

if __name__ == "__main__":
    sys.exit(main())
