import sys

from featql.cli.main import main

if __name__ == "__main__":  # not when a spawned child (featql.server.ingest_host) imports it
    sys.exit(main())
