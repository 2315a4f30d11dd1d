"""hpo_cli: hyperparameter optimization from the command line."""
