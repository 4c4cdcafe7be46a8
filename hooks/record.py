"""Claude Code capture hook entry point: ``<venv python> -I -S hooks/record.py``.

Kept tiny on purpose: a script is compiled on every run, a module's bytecode is cached,
so the work lives in ``spooler.py`` beside this file. Standard library only.
"""

import os
import sys

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import spooler  # type: ignore[import-not-found]  # hooks/ is put on sys.path just above

    spooler.main()
    os._exit(0)  # skip interpreter teardown: exit 0, nothing on stdout
