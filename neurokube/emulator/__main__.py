import sys

from neurokube.emulator.exporter import main

sys.exit(main())
