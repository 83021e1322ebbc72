"""Session fixtures shared by the test modules; each fixture family lives in its own module,
registered here as a pytest plugin."""

pytest_plugins = [
    "tests.hatch_fixtures",
    "tests.registry_fixtures",
    "tests.wasm_fixtures",
    "tests.wit_registry",
]
