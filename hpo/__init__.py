"""hpo: distributed hyperparameter search for fine-tuning Hugging Face text classifiers on Ray.

The package is layered; each layer imports only the ones below it (checked by import-linter,
see `[tool.importlinter]` in pyproject.toml):

    hpo.cli          the `hpo` command line
    hpo.cluster      local clusters, Ray Jobs, rendered cluster configs
    hpo.search       sweep files, the runner, results, comparisons, reports
    hpo.serve        the promotion gate and the Ray Serve deployment
    hpo.trainables   data, tokenization, the training loop, the Tune trainable
    hpo.core         errors, the strict config base, storage, run-dir file names

`hpo.search` and `hpo.serve` are independent of each other, but for the sweep file's `serve:`
section (`hpo.serve.config`), which the sweep file composes with the others.
"""

__version__ = "0.2.0"
