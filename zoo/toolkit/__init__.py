"""Helpers any family may use (documented in docs/plugins.md, "The toolkit"); the core's tools use
``images`` too. Nothing here names a family or a plugin.

- :mod:`zoo.toolkit.images`: model input → pixels, image grids as PNG (numpy + Pillow, no torch);
- :mod:`zoo.toolkit.layers`: layers for models that make images (the size-doubling plan, pixels → model input);
- :mod:`zoo.toolkit.quality`: offline quality of generated images, judged by a classifier run;
- :mod:`zoo.toolkit.graphs`: the one-input, one-output graph checked on the run's own data;
- :mod:`zoo.toolkit.classifiers`: a classifier's confusion matrix and worst-classified table for reports.
"""
