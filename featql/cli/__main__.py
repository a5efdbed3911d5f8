import sys

from featql.cli.main import main

sys.exit(main())
