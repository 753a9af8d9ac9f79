"""The ``jaxmix`` command line (fit, demo, bench): :func:`jaxmix.cli.main.main`."""
