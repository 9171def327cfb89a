"""The partitioning scenario's tables: sensor readings range-partitioned by month (twelve months of
2025 and a default partition), the same rows in one plain table, and events list-partitioned by
region. The index declared on a partitioned table is created on every partition."""
from django.db import migrations

MONTHS = [f"2025-{m:02d}-01" for m in range(1, 13)] + ["2026-01-01"]

SQL = [
    """CREATE TABLE part_reading (id bigint NOT NULL, sensor int NOT NULL, taken_at timestamptz NOT NULL,
                                  value int NOT NULL) PARTITION BY RANGE (taken_at)""",
    *(f"CREATE TABLE part_reading_{MONTHS[i][:7].replace('-', '_')} PARTITION OF part_reading "
      f"FOR VALUES FROM ('{MONTHS[i]}') TO ('{MONTHS[i + 1]}')" for i in range(12)),
    "CREATE TABLE part_reading_default PARTITION OF part_reading DEFAULT",
    "CREATE INDEX part_reading_sensor_taken ON part_reading (sensor, taken_at)",
    """CREATE TABLE flat_reading (id bigint PRIMARY KEY, sensor int NOT NULL, taken_at timestamptz NOT NULL,
                                  value int NOT NULL)""",
    "CREATE INDEX flat_reading_sensor_taken ON flat_reading (sensor, taken_at)",
    """CREATE TABLE part_event (id bigint NOT NULL, region text NOT NULL, amount int NOT NULL)
       PARTITION BY LIST (region)""",
    "CREATE TABLE part_event_eu PARTITION OF part_event FOR VALUES IN ('eu')",
    "CREATE TABLE part_event_us PARTITION OF part_event FOR VALUES IN ('us')",
    "CREATE TABLE part_event_asia PARTITION OF part_event FOR VALUES IN ('asia')",
]
REVERSE = ["DROP TABLE IF EXISTS part_reading, flat_reading, part_event CASCADE"]


class Migration(migrations.Migration):
    dependencies = [("bookstore", "0004_writes_and_locks")]
    operations = [migrations.RunSQL(SQL, REVERSE)]
