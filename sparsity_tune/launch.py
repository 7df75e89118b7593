"""``python -m sparsity_tune.launch``: Run a sweep (the code lives in :mod:`sparsity_tune.sweep.launch`)."""

import sys

from sparsity_tune.sweep.launch import main

if __name__ == "__main__":
    sys.exit(main())
