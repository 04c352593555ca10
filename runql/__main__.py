import sys

from runql.cli import main

sys.exit(main())
