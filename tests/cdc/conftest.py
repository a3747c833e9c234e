from tests.cdc.tables import items  # noqa: F401
from tests.pipelines.test_monitoring import on_disk, pagerduty  # noqa: F401  (a pager endpoint on 127.0.0.1)
from tests.postgres import logical_postgres  # noqa: F401
