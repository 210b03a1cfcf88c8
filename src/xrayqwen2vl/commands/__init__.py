"""One module per subcommand; each has ``register(subparsers)``. cli.py lists them in order."""
