"""``python -m jaxmix [command ...]``: the ``jaxmix`` command (see :mod:`jaxmix.cli.main`).

Without arguments it runs the main job, ``jaxmix demo``: BIC over k on the
built-in seed data, EM vs MAP-EM vs an optax optimizer, a report and figures
in ``./jaxmix-demo``.
"""

import sys

from jaxmix.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
