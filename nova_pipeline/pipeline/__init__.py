"""The migration pipeline in plain Python: one table's export → transform → load (`table.migrate_table`), a
range of time partitions (`partition_range.load_partition_range`) and their window checks. The Dagster assets
call these and attach metadata; nothing here imports Dagster."""
