"""The migration pipeline in plain Python, which the Dagster assets call and decorate with metadata: what a
migration checks before it writes (`preflight`), the snapshot and profile of the source (`source`), one table's
export → transform → load (`table.migrate_table`), a range of time partitions
(`partition_range.load_partition_range`) and their window checks (`partition_checks`), and the report's counts
(`report.count_report`). Nothing here imports Dagster."""
