"""Session fixtures shared by the test modules; each fixture family lives in its own module."""

from tests.hatch_fixtures import *  # noqa: F403
from tests.registry_fixtures import *  # noqa: F403
from tests.wasm_fixtures import *  # noqa: F403
