"""The handlers of the roles zoo itself registers (:mod:`zoo.roles`): ``classifier``, ``sampler`` and ``decoder``,
written against the public :mod:`zoo.role_handlers` API exactly as a plugin's handlers are."""
