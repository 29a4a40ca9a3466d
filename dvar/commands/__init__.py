"""One module per `dvar` sub-command; each defines `add_parser(subparsers)` and `run(args)`."""
