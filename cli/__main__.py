"""`python -m cli` runs the tailor command line (through a running server where it can: cli.main)."""

from cli.main import main

main()
