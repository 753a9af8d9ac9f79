"""Fits: the one driver loop (:mod:`jaxmix.fit.driver`), the one input
pipeline (:mod:`jaxmix.fit.inputs`), initialisation, and the entry points
re-exported by :mod:`jaxmix`."""
