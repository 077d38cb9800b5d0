"""`python -m hpo.cli ...`, as a Ray Job's entrypoint runs hpo from its working dir."""

from hpo.cli.main import main

main()
