"""Gaussian mixtures: densities, the E-step statistics, the EM / MAP-EM and
stepwise steps, priors, gradient-fit objectives, and the covariance families.
Fits are :func:`jaxmix.fit_gmm`, :func:`jaxmix.fit_gradient` and
:func:`jaxmix.fit_gmm_online`."""

from jaxmix.gmm.covariance import family
from jaxmix.gmm.density import (component_log_prob, log_prob, mean_log_likelihood, predict,
                                responsibilities, sample, weighted_log_prob)
from jaxmix.gmm.gradient import Unconstrained, constrain, unconstrain
from jaxmix.gmm.objective import mean_log_posterior
from jaxmix.gmm.priors import GMMPrior, default_prior, log_prior
from jaxmix.gmm.stats import GMMStats, batched_e_step, e_step
from jaxmix.gmm.step import batched_em_step, em_step, stepwise_em_step
from jaxmix.gmm.update import m_step

__all__ = ["GMMPrior", "GMMStats", "Unconstrained", "batched_e_step", "batched_em_step",
           "component_log_prob", "constrain", "default_prior", "e_step", "em_step", "family",
           "log_prior", "log_prob", "m_step", "mean_log_likelihood", "mean_log_posterior",
           "predict", "responsibilities", "sample", "stepwise_em_step", "unconstrain",
           "weighted_log_prob"]
