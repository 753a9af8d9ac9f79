"""Mixtures of any component family (the protocol is in
:mod:`jaxmix.families.protocol`): Bernoulli (binary features) and Poisson
(counts), fitted by :func:`fit_mixture` (EM / MAP-EM, restarts batched)."""

from jaxmix.families.bernoulli import Bernoulli, BetaPrior
from jaxmix.families.fit import fit_mixture
from jaxmix.families.mixture import (MixtureParams, aic, bic, log_prob, n_parameters, predict,
                                     responsibilities, sample, weighted_log_prob)
from jaxmix.families.poisson import GammaPrior, Poisson
from jaxmix.families.protocol import ComponentFamily

__all__ = ["Bernoulli", "BetaPrior", "ComponentFamily", "GammaPrior", "MixtureParams", "Poisson",
           "aic", "bic", "fit_mixture", "log_prob", "n_parameters", "predict",
           "responsibilities", "sample", "weighted_log_prob"]
