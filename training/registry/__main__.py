import sys

from training.registry.cli import main

sys.exit(main())
