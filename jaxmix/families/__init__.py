"""Mixtures of any component family (the protocol is in
:mod:`jaxmix.families.protocol`): Bernoulli (binary features), categorical
(integer codes per column), Poisson (counts), exponential (positive values),
Gaussian (full, diagonal or spherical covariances, those of
:func:`jaxmix.fit_gmm`), diagonal Gaussian, Student-t (heavy tails, full covariances), von
Mises-Fisher (unit vectors), and
products of them over column blocks (mixed-type
data), fitted by :func:`fit_mixture` (EM / MAP-EM, restarts batched) or
:func:`fit_mixture_gradient` (any optax optimizer, the same objective)."""

from jaxmix.families.bernoulli import Bernoulli, BetaPrior
from jaxmix.families.categorical import Categorical, DirichletPrior
from jaxmix.families.exponential import Exponential, RatePrior
from jaxmix.families.fit import fit_mixture
from jaxmix.families.gaussian import DiagGaussian, DiagParams
from jaxmix.families.gmm import Gaussian, GaussianComponents
from jaxmix.families.gradient import FamilyObjective, fit_mixture_gradient
from jaxmix.families.mixture import (MixtureParams, aic, bic, log_prob, n_parameters, predict,
                                     responsibilities, sample, score_samples_chunked,
                                     weighted_log_prob)
from jaxmix.families.online import fit_mixture_online
from jaxmix.families.poisson import GammaPrior, Poisson
from jaxmix.families.product import Product
from jaxmix.families.select import select_mixture_k
from jaxmix.families.protocol import ComponentFamily
from jaxmix.families.student import StudentParams, StudentT
from jaxmix.families.vmf import VMFParams, VonMisesFisher

__all__ = ["Bernoulli", "BetaPrior", "Categorical", "ComponentFamily", "DiagGaussian",
           "DiagParams", "DirichletPrior", "Exponential", "FamilyObjective", "GammaPrior",
           "Gaussian", "GaussianComponents", "MixtureParams", "Poisson", "Product", "RatePrior",
           "StudentParams", "StudentT", "VMFParams", "VonMisesFisher", "aic", "bic",
           "fit_mixture", "fit_mixture_gradient", "fit_mixture_online", "log_prob", "n_parameters", "predict",
           "responsibilities", "sample", "score_samples_chunked", "select_mixture_k", "weighted_log_prob"]
