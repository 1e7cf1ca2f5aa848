"""``python -m nac_hash.cli`` (as torchrun runs it): the nac-hash command line."""

import sys

from nac_hash.cli import main

sys.exit(main())
