"""The deprecated top-level names of the first release: each resolves to the
object at its new location and warns, naming that location. The only test
module that uses them; everything else reaches the new spellings."""

from __future__ import annotations

import importlib
import re

import jax
import numpy as np
import pytest
from conftest import blobs

import jaxmix
from jaxmix._deprecated import ALIASES
from jaxmix.fit.streams import fit_gmm_stream


@pytest.mark.parametrize("name", sorted(ALIASES))
def test_alias_resolves_to_new_location_and_warns(name):
    module, new, hint = ALIASES[name]
    with pytest.warns(DeprecationWarning, match=re.escape(hint)) as record:
        got = getattr(jaxmix, name)
    assert got is getattr(importlib.import_module(module), new)
    message = str(next(w.message for w in record if w.category is DeprecationWarning))
    assert f"jaxmix.{name} is deprecated" in message


def test_fit_gmm_stream_equals_fit_gmm_on_open_source():
    x = blobs(np.random.default_rng(0), 60, [[-3.0, 0.0], [3.0, 1.0]])
    kw = dict(n_restarts=2, init="random_from_data", max_iter=5, tol=0.0, chunk_size=16)
    a = fit_gmm_stream(0, x, 2, **kw)
    b = jaxmix.fit_gmm(0, jaxmix.open_source(x), 2, **kw)
    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    assert tree_a == tree_b
    for u, v in zip(leaves_a, leaves_b):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-12, atol=1e-12)
