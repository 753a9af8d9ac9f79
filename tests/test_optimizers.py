"""Named optax optimizers (:mod:`jaxmix.optimizers`): a fit given one is the
fit given the optax object, equal names and arguments compile one program,
the store of compiled programs can key it, and bad names or arguments fail
with the argument named."""

from __future__ import annotations

import numpy as np
import optax
import pytest

from jaxmix import executables
from jaxmix.fit.gradient import fit_gradient
from jaxmix.fit.rows import TRACE_COUNT
from jaxmix.families import Poisson, fit_mixture_gradient
from jaxmix.optimizers import NamedOptimizer, named_optimizer, resolve

X = np.concatenate([np.random.default_rng(0).normal(-3, 1, (40, 2)),
                    np.random.default_rng(1).normal(3, 1, (40, 2))])


def assert_same_fit(a, b):
    np.testing.assert_array_equal(np.asarray(a.objective), np.asarray(b.objective))
    np.testing.assert_array_equal(np.asarray(a.params.means), np.asarray(b.params.means))
    np.testing.assert_array_equal(np.asarray(a.n_iter), np.asarray(b.n_iter))


@pytest.mark.parametrize("name, options", [("adam", {"learning_rate": 0.05}), ("lbfgs", {})])
def test_a_named_optimizer_fits_as_the_optax_object(name, options):
    """lbfgs gets optax's extra arguments (value_fn) through the name too."""
    kw = dict(n_restarts=2, max_iter=12, covariance_type="diag")
    by_name = fit_gradient(0, X, 2, named_optimizer(name, **options), **kw)
    by_object = fit_gradient(0, X, 2, getattr(optax, name)(**options), **kw)
    assert_same_fit(by_name, by_object)


def test_equal_names_and_arguments_share_one_program():
    kw = dict(n_restarts=2, max_iter=5, covariance_type="spherical")
    before = TRACE_COUNT["gradient"]
    fit_gradient(0, X, 2, named_optimizer("sgd", learning_rate=0.01), **kw)
    fit_gradient(1, X, 2, named_optimizer("sgd", learning_rate=0.01), **kw)
    assert TRACE_COUNT["gradient"] - before == 1
    fit_gradient(0, X, 2, optax.sgd(0.01), **kw)  # a fresh optax object: a new program
    fit_gradient(0, X, 2, optax.sgd(0.01), **kw)
    assert TRACE_COUNT["gradient"] - before == 3


def test_family_gradient_fits_take_named_optimizers():
    counts = np.random.default_rng(2).poisson(3.0, (60, 2)).astype(np.float64)
    a = fit_mixture_gradient(0, counts, 2, Poisson(), named_optimizer("lbfgs"), n_restarts=2,
                             max_iter=6)
    b = fit_mixture_gradient(0, counts, 2, Poisson(), optax.lbfgs(), n_restarts=2, max_iter=6)
    np.testing.assert_array_equal(np.asarray(a.objective), np.asarray(b.objective))


def test_the_store_keys_named_optimizers_but_not_optax_objects():
    key = executables.call_key
    arrays = ((np.zeros(2, np.float32),), {})
    named = key("f", {"optimizer": named_optimizer("adam", learning_rate=0.1)}, arrays)
    assert named is not None
    assert named == key("f", {"optimizer": named_optimizer("adam", learning_rate=0.1)}, arrays)
    assert named != key("f", {"optimizer": named_optimizer("adam", learning_rate=0.2)}, arrays)
    assert key("f", {"optimizer": optax.adam(0.1)}, arrays) is None  # closures: declined


def test_named_optimizers_are_values():
    a = named_optimizer("adam", b1=0.8, learning_rate=0.1)
    assert a == named_optimizer("adam", learning_rate=0.1, b1=0.8) and hash(a) == hash(
        named_optimizer("adam", learning_rate=0.1, b1=0.8))
    assert a != named_optimizer("adam", learning_rate=0.1)
    assert isinstance(resolve(a), optax.GradientTransformationExtraArgs)
    plain = optax.sgd(0.1)
    assert resolve(plain) is plain
    assert isinstance(a, NamedOptimizer)
    # NumPy scalars are the Python numbers they hold; 1 and 1.0 stay apart
    assert named_optimizer("adam", learning_rate=np.float32(0.5)) == named_optimizer(
        "adam", learning_rate=0.5)
    assert type(dict(named_optimizer("sgd", learning_rate=np.int64(1)).options)[
        "learning_rate"]) is int


@pytest.mark.parametrize("name, options, match", [
    ("adamm", {}, "name must be an optax optimizer's factory"),
    ("_private", {}, "name must be"),
    ("GradientTransformation", {}, "name must be"),
    ("adam", {"learning_rate": optax.constant_schedule(0.1)}, "learning_rate=.* pass the optax"),
    ("adam", {"learning_rat": 0.1}, r"optax.adam\(.*\) failed"),
    ("adam", {"learning_rate": float("nan")}, "not a finite number"),
    ("adam", {"learning_rate": np.array([0.1, 0.2])}, "not a finite number"),
    ("apply_updates", {}, "failed"),
])
def test_bad_names_and_arguments_are_named(name, options, match):
    with pytest.raises(ValueError, match=match):
        named_optimizer(name, **options)
