"""The Hatch-free build pipeline: settings, project annotations, compilers, the pipeline.

Imports ``runtime``, ``wit``, ``registry``, ``oci``, ``wasm``, ``files``; never Hatch.
"""
