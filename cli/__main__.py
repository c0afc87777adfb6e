"""`python -m cli` runs the tailor command line."""

from cli.app import main

main()
