"""The sweep layer: a search space run as Ray Tune trials, with W&B logging and a summary."""
