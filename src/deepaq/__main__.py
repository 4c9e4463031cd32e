import sys

from deepaq.cli import main

sys.exit(main())
