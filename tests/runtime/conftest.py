from tests.batch.conftest import lab, personalize  # noqa: F401  (the trained dataset group)
