"""The ``jaxmix`` command.

    jaxmix demo                         # the main job on the built-in seed data
    jaxmix fit DATA --k 1-6 --plot      # choose k for your data (.npy, .npz, .csv)
    jaxmix bench --n 50000              # EM speed against scikit-learn
    jaxmix predict MODEL DATA --out p.csv   # labels, probabilities, log-density, anomalies
    jaxmix info MODEL                   # what a model file holds

Argument parsing and dispatch only: the jobs live in :mod:`jaxmix.cli.fit`,
:mod:`jaxmix.cli.demo`, :mod:`jaxmix.cli.bench` and :mod:`jaxmix.cli.apply`, loading in
:mod:`jaxmix.cli.data`, output in :mod:`jaxmix.cli.report`.

Compiled programs are kept in JAX's persistent compilation cache (a per-user
folder, :func:`jaxmix.compile_cache.default_cache_dir`), so a second run
starts without compiling: ``--no-compilation-cache`` or
``JAXMIX_COMPILATION_CACHE=off`` turns it off, ``--compilation-cache DIR`` or
``JAXMIX_COMPILATION_CACHE=DIR`` moves it. The flags go before or after the
command.

Exit status: 0 on success, 2 for bad arguments or input (argparse's
convention), 1 for any other failure; errors go to stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jaxmix.atomic import write_text
from jaxmix.cli.data import UsageError
from jaxmix.compile_cache import ENV_VAR, default_cache_dir, enable_compilation_cache
from jaxmix.params import COVARIANCE_TYPES

ALL_TYPES = "all"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _float_at_least_zero(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def _float_above_zero(text: str) -> float:
    value = _float_at_least_zero(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected a number > 0, got 0")
    return value


def _covariance_types(values) -> tuple:
    return COVARIANCE_TYPES if ALL_TYPES in values else tuple(dict.fromkeys(values))


def _add_common(p, restarts: int, max_iter_help: str, out: str, run) -> None:
    p.add_argument("--covariance", nargs="+", default=None, metavar="TYPE",
                   choices=COVARIANCE_TYPES + (ALL_TYPES,),
                   help=f"covariance type(s): {', '.join(COVARIANCE_TYPES)} or {ALL_TYPES}")
    p.add_argument("--restarts", type=_positive_int, default=restarts,
                   help="random restarts per fit, run batched (default %(default)s)")
    p.add_argument("--learning-rate", type=_float_above_zero, default=None,
                   help="learning rate of an optax optimizer (default: the optimizer's own, "
                        "else 0.03)")
    p.add_argument("--max-iter", type=_positive_int, default=None,
                   help=f"iteration cap (default: {max_iter_help})")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", type=Path, default=Path(out),
                   help="output folder (default ./%(default)s)")
    p.set_defaults(run=run)


def _add_cache_options(p, default) -> None:
    """The global cache flags; subcommands repeat them with ``default=SUPPRESS``."""
    folder = str(default_cache_dir()).replace("%", "%%")
    p.add_argument("--compilation-cache", type=Path, default=default, metavar="DIR",
                   help=f"keep compiled programs in DIR (default: ${ENV_VAR}, else {folder})")
    p.add_argument("--no-compilation-cache", action="store_true", default=default,
                   help=f"compile afresh, write no cache (also: {ENV_VAR}=off)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxmix", description="Gaussian mixtures and K-Means in JAX.",
        epilog="Without a command, `jaxmix` runs `jaxmix demo`. Compiled programs are kept "
               "in a per-user cache folder so that the next run starts faster; "
               "--no-compilation-cache turns that off, --compilation-cache DIR moves it.")
    _add_cache_options(parser, default=None)
    sub = parser.add_subparsers(dest="command", metavar="{fit,demo,bench,predict,info}")
    _add_fit(sub)
    _add_demo(sub)
    _add_bench(sub)
    from jaxmix.cli.apply import add_commands

    add_commands(sub)
    for command in sub.choices.values():
        _add_cache_options(command, default=argparse.SUPPRESS)
    return parser


def _add_fit(sub) -> None:
    fit = sub.add_parser("fit", help="fit Gaussian mixtures to a data file and choose k",
                         description="Fit a Gaussian mixture for every k and covariance type, "
                                     "print the table, save the best model.")
    fit.add_argument("data", metavar="DATA", help="a .npy, .npz or .csv file (rows = samples)")
    fit.add_argument("--k", default="1-6",
                     help="k, a range or a list: 3, 1-6, 2,4,8 (default %(default)s)")
    fit.add_argument("--method", default="em",
                     help="em, map-em, or an optax optimizer by name: adam, sgd, lbfgs, ... "
                          "(default em)")
    fit.add_argument("--prior", choices=("none", "default"), default=None,
                     help="objective of gradient fits: none (maximum likelihood; the "
                          "default, as for em and jaxmix.fit_gradient) or default (MAP, the "
                          "objective of map-em)")
    fit.add_argument("--criterion", choices=("bic", "aic"), default="bic",
                     help="how to choose the best model (default bic)")
    fit.add_argument("--tol", type=_float_at_least_zero, default=None,
                     help="stop when the objective changes less in an iteration (gradient "
                          "fits: and an EM step would gain less); default 1e-3 for every "
                          "method")
    fit.add_argument("--key", help=".npz files: the array to read")
    fit.add_argument("--delimiter", default=",", help=".csv files: field separator")
    fit.add_argument("--header", action=argparse.BooleanOptionalAction, default=None,
                     help=".csv files: the first row is a header (--header) or data "
                          "(--no-header); default: a header when none of its fields is a "
                          "number or a missing value")
    fit.add_argument("--drop-nan", action="store_true",
                     help="drop rows with missing, NaN or infinite values instead of failing")
    fit.add_argument("--columns", metavar="COLS",
                     help="columns to fit, by header name or 0-based index: a,b,3 (default: "
                          "all); recorded in the model, so `jaxmix predict` reads the same")
    fit.add_argument("--drop", metavar="COLS",
                     help="columns to leave out (e.g. a label column), by name or index")
    fit.add_argument("--family", metavar="NAME",
                     help="fit mixtures of another component family instead of Gaussians: "
                          "bernoulli (0/1 columns), poisson (counts), exponential (values "
                          ">= 0), vmf (unit vectors) or categorical (integer codes); by em "
                          "or map-em")
    fit.add_argument("--scale", action="store_true",
                     help="standardise every column to mean 0, standard deviation 1 before "
                          "fitting (recorded in the model and applied again by predict)")
    fit.add_argument("--plot", action="store_true",
                     help="write fit.png and criterion.png (needs matplotlib)")
    fit.add_argument("--x64", action="store_true", help="compute in float64")
    fit.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    _add_common(fit, restarts=10, max_iter_help="100 for every method",
                out="jaxmix-fit", run=_run_fit)


def _add_demo(sub) -> None:
    demo = sub.add_parser("demo", help="the main job on the built-in seed data set",
                          description="Choose k by BIC on the seed data, compare EM, MAP-EM "
                                      "and an optax optimizer, write a report and figures.")
    for flags, options in (
            ("--k-max", dict(type=_positive_int, default=6,
                             help="BIC over k = 1..K_MAX (default %(default)s)")),
            ("--optimizer", dict(default="adam",
                                 help="optax optimizer compared with EM (default %(default)s)")),
            ("--no-figures", dict(action="store_true", help="skip the PNG figures"))):
        demo.add_argument(flags, **options)
    _add_common(demo, restarts=10, max_iter_help="1000, per fit in the method comparison",
                out="jaxmix-demo", run=_run_demo)


def _add_bench(sub) -> None:
    from jaxmix.cli import bench as bench_module

    description = ("Time EM iterations of jaxmix and scikit-learn on the same synthetic "
                   "data; print the speed-ups.")
    bench = sub.add_parser("bench", description=description,
                           help="EM speed against scikit-learn, printed as ratios")
    bench_module.add_arguments(bench, n=10_000, d=8, k=8, restarts=8)
    bench.set_defaults(run=_run_bench)


# ---------------------------------------------------------------------------
# commands


def _enable_cache(args) -> None:
    """JAX's persistent compilation cache, before any fit: on unless turned off."""
    if args.no_compilation_cache and args.compilation_cache is not None:
        raise UsageError("--no-compilation-cache and --compilation-cache contradict each "
                         "other; give one")
    if args.no_compilation_cache:
        return
    try:
        enable_compilation_cache(args.compilation_cache)
    except OSError as err:
        if args.compilation_cache is not None:
            raise UsageError(f"--compilation-cache {args.compilation_cache}: cannot use this "
                             f"folder ({err}); choose another") from None
        from jaxmix.cli import report

        report.progress(f"note: compiling without a cache ({err}); set {ENV_VAR}=DIR or "
                        f"pass --compilation-cache DIR")


def _run_fit(args) -> int:
    from jaxmix.cli import report
    from jaxmix.cli.columns import ColumnError, parse_spec
    from jaxmix.cli.data import load
    from jaxmix.cli.fit import best_row, make_method, parse_ks
    from jaxmix.cli.outputs import staged

    ks = parse_ks(args.k)
    try:
        columns, drop = parse_spec(args.columns), parse_spec(args.drop)
    except ColumnError as err:
        raise UsageError(f"--columns/--drop {err}") from None
    method = make_method(args.method, args.learning_rate, args.prior)
    if args.plot and not report.have_matplotlib():
        raise UsageError(f"--plot needs matplotlib, which is not installed: "
                         f"{report.MATPLOTLIB_HINT}; or drop --plot")
    if args.x64:
        import jax
        jax.config.update("jax_enable_x64", True)
    data = load(args.data, key=args.key, delimiter=args.delimiter, header=args.header,
                drop_nan=args.drop_nan, columns=columns, drop=drop)
    live = report.LiveProgress()
    say = (lambda line: None) if args.quiet else live
    try:
        with staged(args.out) as folder:  # nothing lands in --out unless all of it does
            for note in data.notes:
                report.progress(f"note: {note}")
            x, about = _inputs(data, args.scale, report)
            say(f"{args.data}: {x.shape[0]} samples, {x.shape[1]} features; method "
                f"{method.name} ({method.objective})")
            rows, save = _fitted(x, ks, method, args, say)
            live.close()
            chosen = best_row(rows, args.criterion)
            table = report.rows_table(rows, chosen)
            written = [folder / "table.md", folder / "model.npz"]
            write_text(written[0], table + "\n")
            save(written[1], chosen, about)
            if args.plot:
                written += _fit_figures(folder, x, rows, chosen, args.criterion, report)
    finally:
        live.close()
    print(table)
    print(f"\nbest by {args.criterion.upper()}: {chosen.covariance_type}, k={chosen.k}")
    print("wrote " + ", ".join(str(args.out / p.name) for p in written))
    return 0


def _fitted(x, ks, method, args, say):
    """``(rows, save(path, row, about))``: Gaussian mixtures over the k grid and
    covariance types, or mixtures of ``--family``."""
    from jaxmix.cli.fit import model_about, sweep
    from jaxmix.io import save_params

    options = dict(n_restarts=args.restarts, seed=args.seed, max_iter=args.max_iter,
                   tol=args.tol, progress=say)
    if args.family is None:
        rows = sweep(x, ks, _covariance_types(args.covariance or ["full"]), method, **options)
        return rows, lambda path, row, about: save_params(
            path, row.params, model_about(about, row, x, method, args))
    from jaxmix.cli.family_fit import family_named, family_record, family_sweep
    from jaxmix.io.mixture_file import save_mixture

    if method.optimizer is not None or args.covariance or args.plot:
        raise UsageError("--family fits by --method em or map-em, without --covariance and "
                         "--plot (they describe Gaussian mixtures); drop them")
    family = family_named(args.family, x)
    rows = family_sweep(x, ks, family, method.prior, **options)
    return rows, lambda path, row, about: save_mixture(path, family, row.params, model_about(
        about, row, x, method, args, family_record(family, row, x)))


def _inputs(data, scale: bool, report):
    """``(x the model is fitted on, About of its inputs)``: the kept columns,
    standardised with ``--scale``."""
    from jaxmix.cli.columns import about_inputs, standardised

    if not scale:
        return data.x, about_inputs(data.names, data.columns)
    x, center, spread, notes = standardised(data.x)
    for note in notes:
        report.progress(f"note: {note}")
    return x, about_inputs(data.names, data.columns, center, spread)


def _fit_figures(out: Path, x, rows, chosen, criterion: str, report) -> list:
    paths = [out / "criterion.png"]
    report.plot_criterion(paths[0], rows, criterion, chosen)
    if x.shape[1] >= 2:
        paths.append(out / "fit.png")
        view = "data" if x.shape[1] == 2 else "first two principal components"
        report.plot_fit(paths[1], x, chosen.params,
                        f"{chosen.covariance_type}, k={chosen.k} ({view})")
    else:
        report.progress("note: fit.png needs at least two features; only criterion.png "
                        "was written")
    return paths


def _run_demo(args) -> int:
    from jaxmix.cli import demo as cli_demo, report

    figures = not args.no_figures and report.have_matplotlib()
    if not args.no_figures and not figures:
        report.progress(f"note: matplotlib is not installed, so no figures are written "
                        f"({report.MATPLOTLIB_HINT})")
    defaults = cli_demo.Settings()
    settings = cli_demo.Settings(
        k_max=args.k_max, n_restarts=args.restarts, optimizer=args.optimizer,
        covariance_types=_covariance_types(args.covariance or defaults.covariance_types),
        learning_rate=args.learning_rate, max_iter=args.max_iter or defaults.max_iter,
        seed=args.seed)
    from jaxmix.cli.outputs import staged

    with staged(args.out) as folder:  # nothing lands in --out unless all of it does
        paths = [args.out / p.name for p in cli_demo.run(folder, settings, figures)]
    print(f"report: {paths[0]}")
    for path in paths[1:]:
        print(f"        {path}")
    return 0


def _run_bench(args) -> int:
    from jaxmix.cli import bench

    bench.run(args)
    return 0


# ---------------------------------------------------------------------------


def main(argv=None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:  # no command, perhaps global flags: the demo
            args = parser.parse_args(argv + ["demo"])
    except SystemExit as exit_:  # argparse: --help (0) or a bad argument (2)
        return int(exit_.code or 0)
    where = f"jaxmix {args.command}"
    try:
        _enable_cache(args)
        return args.run(args)
    except ValueError as err:  # UsageError, and the library's own input validation
        print(f"{where}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the command's last line of defence
        print(f"{where}: failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
