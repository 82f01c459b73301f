"""ProcessPoolExecutor (placeholder until the shared-memory pool lands)."""
from concurrent.futures.process import BrokenProcessPool  # noqa: F401
from concurrent.futures.process import ProcessPoolExecutor  # noqa: F401
