"""The base every layer may import: errors, the strict config base class, storage of run dirs in
a folder or a bucket, and the names of every file a run dir holds. It imports nothing of hpo."""
