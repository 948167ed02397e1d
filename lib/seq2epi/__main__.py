import sys

from seq2epi.cli import main

sys.exit(main())
