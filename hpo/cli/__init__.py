"""The `hpo` command line, the top layer: thin typer commands that call one library function
each (`main.py` lists them all). User errors are caught at this edge and printed as one short
message with exit code 2.

Commands import the layers that pull Ray and torch (the runner, comparisons, deployment) when
they run, so that `hpo --help`, `validate`, `schema`, `status` and `best` start fast."""
