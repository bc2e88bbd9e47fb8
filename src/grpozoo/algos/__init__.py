"""Pure tensor functions for the algorithm components, one file per family.

Importing this package registers every component in :mod:`grpozoo.registry`.
"""

from grpozoo.algos import advantages, aggregation, kl, losses  # noqa: F401
