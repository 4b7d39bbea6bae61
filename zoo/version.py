"""Version numbers: the package's, and the plugin contract's."""

__version__ = "0.1.0"

#: Version of the plugin contract (hookspecs + Family API). It only grows: a plugin written for
#: contract N keeps working under every later one. Contract 2: family hooks take a ``RunContext``
#: (contract-1 family signatures still work, with a deprecation line, until contract 3).
CONTRACT_VERSION = 2
