"""``python -m sparsity_tune COMMAND ...``: the same as the ``sparsity-tune`` console command."""

import sys

from sparsity_tune.cli import main

sys.exit(main())
