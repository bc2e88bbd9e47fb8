"""Pure tensor functions for the algorithm components, one file per family.

Importing this package imports every module in it, which registers every component in
:mod:`grpozoo.registry`.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
