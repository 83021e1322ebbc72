"""The Hatch adapters: builder, build hook, publisher.

The only modules that import ``hatchling`` or ``hatch``; thin layers over ``build`` and
``registry``.
"""
