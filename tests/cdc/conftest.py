from tests.cdc.tables import items  # noqa: F401
from tests.postgres import logical_postgres  # noqa: F401
