"""`python -m cuda_convnet <command>`; see cuda_convnet/cli/."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
