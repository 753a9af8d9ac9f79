"""The families through every face: the MixtureModel estimator, model files
(checked as untrusted input) and ``jaxmix fit --family`` / ``predict`` / ``info``."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

from jaxmix.cli.main import main
from conftest import rewrite_metadata

from jaxmix.families import (Bernoulli, Categorical, DiagGaussian, Poisson, Product, fit_mixture,
                             log_prob)
from jaxmix.io.mixture_file import load_mixture, save_mixture
from jaxmix.sklearn import MixtureModel


def counts(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return rng.poisson(np.where(np.arange(n)[:, None] % 2, [2.0, 7.0], [9.0, 1.0])).astype(float)


def test_estimator_is_the_functional_fit():
    x = counts()
    model = MixtureModel(Poisson(), n_components=2, n_init=4, random_state=0).fit(x)
    ref = fit_mixture(0, x, 2, Poisson(), n_restarts=4)
    np.testing.assert_allclose(model.theta_, ref.best_params.theta, rtol=1e-12)
    assert model.converged_ and model.n_iter_ == int(ref.n_iter[ref.best])
    lam, w = model.theta_, model.weights_
    per = np.stack([np.log(w[j]) + st.poisson(lam[j]).logpmf(x).sum(axis=1) for j in range(2)], 1)
    np.testing.assert_allclose(model.score_samples(x), np.logaddexp.reduce(per, axis=1),
                               rtol=1e-10)
    np.testing.assert_array_equal(model.predict(x), np.argmax(per, axis=1))
    np.testing.assert_allclose(model.bic(x), -2 * np.logaddexp.reduce(per, axis=1).sum()
                               + 5 * np.log(len(x)), rtol=1e-10)
    with pytest.raises(ValueError, match="outside the poisson family's support"):
        model.predict(-x)
    drawn, labels = model.sample(50)
    assert drawn.shape == (50, 2) and set(np.unique(labels)) <= {0, 1}


def test_model_files_round_trip_and_are_checked(tmp_path):
    x = np.column_stack([counts()[:, 0], np.arange(300) % 3, counts()[:, 1] * 0.5])
    family = Product(((Poisson(), (0,)), (Categorical((3,)), (1,)), (DiagGaussian(), (2,))))
    result = fit_mixture(0, x, 2, family, n_restarts=2)
    save_mixture(tmp_path / "m.npz", family, result.best_params)
    loaded_family, params, _ = load_mixture(tmp_path / "m.npz")
    assert loaded_family == family
    for a, b in zip(np.asarray(params.weights), np.asarray(result.best_params.weights)):
        assert a == b
    est = MixtureModel.load(tmp_path / "m.npz")
    np.testing.assert_allclose(est.score_samples(x),
                               log_prob(family, result.best_params, x), rtol=1e-12)
    # a crafted family or wrong shapes are refused, naming the file
    save_mixture(tmp_path / "b.npz", Bernoulli(), fit_mixture(
        0, (x[:, :2] > 1).astype(float), 2, Bernoulli()).best_params)
    rewrite_metadata(tmp_path / "b.npz", family={"name": "categorical", "n_categories": [0]})
    with pytest.raises(ValueError, match="b.npz: family .* n_categories"):
        load_mixture(tmp_path / "b.npz")
    save_mixture(tmp_path / "c.npz", Poisson(), result.best_params._replace(
        theta=np.ones((2, 3))))
    rewrite_metadata(tmp_path / "c.npz", n_features=2)
    with pytest.raises(ValueError, match=r"c.npz.*theta:0.*shape \(2, 2\)"):
        load_mixture(tmp_path / "c.npz")


def test_command_line_fits_inspects_and_applies_a_family(tmp_path, capsys):
    x = (counts() > 4).astype(float)
    np.save(tmp_path / "bin.npy", x)
    out = tmp_path / "fit"
    assert main(["fit", str(tmp_path / "bin.npy"), "--family", "bernoulli", "--k", "1-3",
                 "--restarts", "2", "--quiet", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "best by BIC: bernoulli, k=2" in text
    assert main(["info", str(out / "model.npz")]) == 0
    assert "bernoulli mixture: k=2, d=2" in capsys.readouterr().out
    assert main(["predict", str(out / "model.npz"), str(tmp_path / "bin.npy")]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0] == "label,probability_0,probability_1,log_density,anomaly"
    family, params, _ = load_mixture(out / "model.npz")
    est = MixtureModel.load(out / "model.npz")
    np.testing.assert_allclose([float(r.split(",")[3]) for r in rows[1:]],
                               est.score_samples(x), rtol=1e-6)
    assert main(["fit", str(tmp_path / "bin.npy"), "--family", "bernoulli", "--method", "adam",
                 "--out", str(tmp_path / "no")]) == 2
    assert "--family fits by --method em or map-em" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


def test_files_of_families_of_your_own_are_checked(tmp_path):
    """A family of your own round-trips by name and fields (NumPy scalars
    become numbers); one renamed from its class default cannot be read back,
    so it is refused when saved; the reader's classes must be dataclasses."""
    import dataclasses

    from jaxmix.families import Poisson
    from jaxmix.families.spec import from_spec, to_spec

    @dataclasses.dataclass(frozen=True)
    class Scaled(Poisson):
        scale: float = 1.0
        name: str = "scaled poisson"

    spec = to_spec(Scaled(scale=np.float32(0.5)))
    assert spec == {"name": "scaled poisson", "fields": {"scale": 0.5}}
    assert from_spec(spec, "f", families=[Scaled]) == Scaled(scale=0.5)
    with pytest.raises(ValueError, match="not built in; pass its class"):
        from_spec(spec, "f")
    with pytest.raises(ValueError, match="leave name at its default"):
        to_spec(Scaled(scale=0.5, name="other"))
    with pytest.raises(ValueError, match="families must hold family classes"):
        from_spec(spec, "f", families=[int])
